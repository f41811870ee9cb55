//! The packer, as CI and the NPU tests use it: an ONNX model and
//! calibration images in, a stand-in `.rknn` out.

use std::path::PathBuf;
use std::process::Command;

use rknnrt::container::{OutputType, parse};

fn shared() -> PathBuf {
    let dir = std::env::var_os("CAMERA_SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    assert!(
        dir.join("models/fastestdet/FastestDet.onnx").is_file(),
        "test data not found at {}: check out ../shared beside the repository or set CAMERA_SHARED_DIR",
        dir.display()
    );
    dir
}

fn packer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rknn-standin"))
}

#[test]
fn packs_an_onnx_model_with_calibrated_outputs() {
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("m.rknn");
    let status = packer()
        .arg("--onnx")
        .arg(shared.join("models/fastestdet/FastestDet.onnx"))
        .args(["--soc", "rv1106", "--bgr", "--fp16-outputs", "--out"])
        .arg(&out)
        .arg(shared.join("images/coco_sample_0.jpg"))
        .status()
        .expect("run rknn-standin");
    assert!(status.success());
    let bytes = std::fs::read(&out).expect("packed model");
    let (header, onnx) = parse(&bytes).expect("a stand-in model");
    assert_eq!(header.target, "rv1106");
    assert_eq!((header.input.width, header.input.height), (352, 352));
    assert!(!header.outputs.is_empty());
    assert!(
        header
            .outputs
            .iter()
            .all(|o| o.dtype == OutputType::Float16)
    );
    assert!(onnx.len() > 100_000, "the ONNX model rides along");
}

#[test]
fn a_missing_model_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nope.onnx");
    let out = packer()
        .arg("--onnx")
        .arg(&missing)
        .args(["--soc", "rk3588", "--out"])
        .arg(tmp.path().join("m.rknn"))
        .arg(tmp.path().join("img.jpg"))
        .output()
        .expect("run rknn-standin");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.onnx"), "{err}");
}
