//! The NPU backend through its real FFI path, against the stand-in runtime
//! (`tests/rknn-standin`, built as `librknnrt.so` beside this test): the
//! same people as the CPU backend on `../shared/images` in both I/O
//! styles, and a clear error for each way the NPU setup can be wrong.
//! Runs on x86-64 and, in CI, under qemu-aarch64 and qemu-arm.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use camera_app::capture::Timestamp;
use camera_app::capture::files::decode_image;
use camera_app::detect::{Detection, Detector};
use camera_app::model::{self, Backend, DetectorOptions, Manifest, NpuModel, NpuSetup};
use camera_app::preprocess::{Colorimetry, Preprocessor};
use common::{images_dir, models_dir};
use rknnrt::container::{self, Header, InputDesc, OutputType};

/// The stand-in runtime built for this target: `$RKNN_STANDIN_LIB`, or
/// `librknnrt.so` in this test's target directory.
fn standin_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("RKNN_STANDIN_LIB") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    for dir in [deps, deps.parent().unwrap_or(deps)] {
        let p = dir.join("librknnrt.so");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the stand-in NPU runtime librknnrt.so is not next to {}: build it with \
         `cargo build -p rknn-standin` (add `--target <triple>` for ARM), or set RKNN_STANDIN_LIB",
        exe.display()
    );
}

/// A copy of the stand-in with its own `standin.toml`: one "board".
fn runtime(dir: &Path, name: &str, config: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).expect("mkdir");
    let lib = d.join("librknnrt.so");
    std::fs::copy(standin_lib(), &lib).expect("copy stand-in");
    std::fs::write(d.join("standin.toml"), config).expect("write standin.toml");
    lib
}

fn onnx() -> Vec<u8> {
    std::fs::read(models_dir().join("fastestdet/FastestDet.onnx")).expect("read FastestDet.onnx")
}

fn image_paths() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(images_dir())
        .expect("images dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 5,
        "expected the test images in {}",
        images_dir().display()
    );
    v
}

/// The int8 calibration, done once: what rknn-toolkit2 would compute from
/// the calibration images, through the same preprocessing as the camera.
fn calibrated() -> &'static Header {
    static H: OnceLock<Header> = OnceLock::new();
    H.get_or_init(|| {
        let m = Manifest::builtin("fastestdet").expect("manifest");
        let mut pre = Preprocessor::new(m.input.clone(), Colorimetry::Bt601Limited);
        let mut calib = Vec::new();
        for p in image_paths() {
            let frame =
                decode_image(&std::fs::read(&p).expect("read"), 0, Timestamp(0)).expect("decode");
            let mut t = pre.new_input_tensor();
            pre.run(&frame, &mut t).expect("preprocess");
            let camera_app::tensor::TensorData::F32(x) = t.data else {
                panic!("f32 input expected")
            };
            calib.push(x);
        }
        let input = InputDesc {
            name: String::new(),
            width: m.input.width,
            height: m.input.height,
            mean: [0.0; 3],
            std: [1.0 / m.input.scale; 3],
        };
        container::calibrate(&onnx(), "rk3588", input, &calib).expect("calibrate")
    })
}

/// A models directory holding FastestDet's "converted" builds and a
/// manifest naming them.
fn npu_models(dir: &Path, edit: impl Fn(&mut Header)) -> (Manifest, PathBuf) {
    let models = dir.join("models");
    let fd = models.join("fastestdet");
    std::fs::create_dir_all(&fd).expect("mkdir");
    let mut m = Manifest::builtin("fastestdet").expect("manifest");
    for soc in ["rk3588", "rk3568", "rv1106"] {
        let mut h = calibrated().clone();
        h.target = soc.into();
        edit(&mut h);
        let file = format!("FastestDet-{soc}.rknn");
        std::fs::write(fd.join(&file), container::write(&h, &onnx())).expect("write model");
        m.npu.insert(
            soc.into(),
            NpuModel {
                file,
                toolkit: "rknn-standin".into(),
                dtype: "int8".into(),
                correlation: 1.0,
            },
        );
    }
    (m, models)
}

fn setup(board: &str, lib: &Path, api: Option<boards::NpuApi>) -> Backend {
    Backend::Rknn(Box::new(NpuSetup {
        board: boards::builtin(board).expect("board"),
        library: Some(lib.to_path_buf()),
        api,
        model: None,
    }))
}

fn person_opts() -> DetectorOptions {
    DetectorOptions {
        classes: vec!["person".into()],
        threads: 1,
        ..DetectorOptions::default()
    }
}

fn detect_all(det: &mut Detector) -> Vec<(String, Vec<Detection>)> {
    image_paths()
        .iter()
        .map(|p| {
            let frame =
                decode_image(&std::fs::read(p).expect("read"), 0, Timestamp(0)).expect("decode");
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, det.detect(&frame).expect("detect").to_vec())
        })
        .collect()
}

fn iou(a: &Detection, b: &Detection) -> f32 {
    let (a, b) = (a.bbox, b.bbox);
    let iw = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let ih = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = iw * ih;
    inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter)
}

/// Match NPU detections to CPU ones: every person found by one backend is
/// found by the other with IoU ≥ 0.8 and |Δscore| ≤ 0.05, except those
/// within 0.05 of the score threshold, which int8 may tip either way.
/// Returns (matched, worst IoU, worst |Δscore|) or the problems.
fn compare(
    cpu: &[(String, Vec<Detection>)],
    npu: &[(String, Vec<Detection>)],
    threshold: f32,
) -> Result<(usize, f32, f32), Vec<String>> {
    let (mut matched, mut worst_iou, mut worst_ds) = (0, 1.0f32, 0.0f32);
    let mut problems = Vec::new();
    for ((image, c), (_, n)) in cpu.iter().zip(npu) {
        let mut used = vec![false; n.len()];
        for r in c {
            let best = n
                .iter()
                .enumerate()
                .filter(|(i, _)| !used[*i])
                .map(|(i, g)| (i, iou(r, g)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((i, v)) if v >= 0.8 && (n[i].score - r.score).abs() <= 0.05 => {
                    used[i] = true;
                    matched += 1;
                    worst_iou = worst_iou.min(v);
                    worst_ds = worst_ds.max((n[i].score - r.score).abs());
                }
                _ if r.score - threshold <= 0.05 => {}
                other => problems.push(format!(
                    "{image}: CPU person {:?} score {:.3} has no NPU match (best {other:?})",
                    r.bbox, r.score
                )),
            }
        }
        for (i, g) in n.iter().enumerate() {
            if !used[i] && g.score - threshold > 0.05 {
                problems.push(format!(
                    "{image}: NPU person {:?} score {:.3} not found by the CPU",
                    g.bbox, g.score
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok((matched, worst_iou, worst_ds))
    } else {
        Err(problems)
    }
}

/// Acceptance 1: the same people as the CPU backend, in both I/O styles
/// and both native output layouts.
#[test]
fn npu_finds_the_same_people_as_the_cpu() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (m, models) = npu_models(tmp.path(), |_| {});
    let opts = person_opts();
    let mut cpu = model::detector(&m, &models_dir(), &Backend::Cpu, &opts).expect("cpu");
    let threshold = cpu.settings().score_threshold;
    let want = detect_all(&mut cpu);
    let people: usize = want.iter().map(|(_, d)| d.len()).sum();
    assert!(people >= 5, "the images should hold people: {want:?}");

    // rknn-toolkit2's hybrid quantisation (what models/convert.py ships for
    // RK3588/RK3568) keeps FastestDet's head in fp16: the output is float16.
    let (m16, models16) = npu_models(&tmp.path().join("fp16"), |h| {
        for o in &mut h.outputs {
            o.dtype = OutputType::Float16;
        }
    });
    let rk3588 = runtime(tmp.path(), "rk3588", "soc = \"rk3588\"\n");
    let rk3568 = runtime(tmp.path(), "rk3568", "soc = \"rk3568\"\n");
    let rv1106 = runtime(
        tmp.path(),
        "rv1106",
        "soc = \"rv1106\"\nzero_copy_only = true\n",
    );
    use boards::NpuApi::{InputsSet, ZeroCopy};
    let int8 = (&m, &models);
    let fp16 = (&m16, &models16);
    let cases = [
        (
            "rk3588",
            &rk3588,
            InputsSet,
            int8,
            "int8, rknn_inputs_set, NCHW",
        ),
        (
            "rk3588",
            &rk3588,
            ZeroCopy,
            int8,
            "int8, zero-copy, NC1HWC2",
        ),
        (
            "rv1106",
            &rv1106,
            ZeroCopy,
            int8,
            "int8, zero-copy only, NHWC",
        ),
        (
            "rk3568",
            &rk3568,
            InputsSet,
            fp16,
            "fp16 head, rknn_inputs_set, f32",
        ),
        (
            "rk3588",
            &rk3588,
            ZeroCopy,
            fp16,
            "fp16 head, zero-copy, NC1HWC2",
        ),
    ];
    for (board, lib, api, (m, models), what) in cases {
        let backend = setup(board, lib, Some(api));
        let mut npu = model::detector(m, models, &backend, &opts).expect(what);
        assert_eq!(npu.backend_name(), "rknn");
        let got = detect_all(&mut npu);
        match compare(&want, &got, threshold) {
            Ok((n, worst_iou, worst_ds)) => {
                println!(
                    "{board} {what}: {n} of {people} CPU people matched, worst IoU {worst_iou:.3}, \
                     worst |Δscore| {worst_ds:.3}"
                );
                assert!(
                    n + 2 >= people,
                    "{board} {what}: only {n} of {people} matched"
                );
            }
            Err(p) => panic!("{board} {what}:\n{}", p.join("\n")),
        }
    }
}

/// The board profile alone (no overrides) picks the library's I/O style
/// and the manifest's file for the SoC.
#[test]
fn profile_drives_the_npu_setup() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (m, models) = npu_models(tmp.path(), |_| {});
    let lib = runtime(
        tmp.path(),
        "rv1106",
        "soc = \"rv1106\"\nzero_copy_only = true\n",
    );
    let mut det = model::detector(&m, &models, &setup("rv1106", &lib, None), &person_opts())
        .expect("rv1106 profile: zero-copy");
    assert!(!detect_all(&mut det).iter().all(|(_, d)| d.is_empty()));
    // The same runtime driven as an RK3568 would be: a model for another SoC.
    let err = model::detector(&m, &models, &setup("rk3568", &lib, None), &person_opts())
        .expect_err("rk3568 model on an rv1106 runtime");
    assert!(
        err.to_string().contains("RKNN_ERR_TARGET_PLATFORM_UNMATCH"),
        "{err}"
    );
}

fn load_err(backend: &Backend, m: &Manifest, models: &Path) -> String {
    match model::detector(m, models, backend, &person_opts()) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} should mention {p:?}");
    }
}

/// Acceptance 2: each way the NPU setup can be wrong says what is wrong.
#[test]
fn npu_errors_name_the_problem() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (m, models) = npu_models(tmp.path(), |_| {});
    let good = runtime(tmp.path(), "rk3588", "");

    // Missing library.
    let missing = tmp.path().join("nowhere/librknnrt.so");
    let msg = load_err(&setup("rk3588", &missing, None), &m, &models);
    assert_has(
        &msg,
        &["nowhere/librknnrt.so", "cannot be loaded", "npu.runtime"],
    );

    // A file that is no library, and a library that is not an RKNN runtime.
    let text = tmp.path().join("rk3588/standin.toml");
    let msg = load_err(&setup("rk3588", &text, None), &m, &models);
    assert_has(&msg, &["standin.toml", "cannot be loaded"]);
    let msg = load_err(&setup("rk3588", Path::new("libm.so.6"), None), &m, &models);
    assert_has(
        &msg,
        &["libm.so.6 is not an RKNN runtime: it has no rknn_init"],
    );

    // Wrong model: the ONNX file where the .rknn belongs.
    let onnx_as_rknn = Backend::Rknn(Box::new(NpuSetup {
        board: boards::builtin("rk3588").expect("board"),
        library: Some(good.clone()),
        api: None,
        model: Some(models_dir().join("fastestdet/FastestDet.onnx")),
    }));
    let msg = load_err(&onnx_as_rknn, &m, &models);
    assert_has(
        &msg,
        &["rknn_init", "RKNN_ERR_MODEL_INVALID", "models/convert.py"],
    );

    // Wrong model: converted for another SoC.
    let msg = load_err(&setup("rk3568", &good, None), &m, &models);
    assert_has(&msg, &["RKNN_ERR_TARGET_PLATFORM_UNMATCH", "another SoC"]);

    // No NPU build of the model for the board's SoC.
    let mut bare = m.clone();
    bare.npu.clear();
    let msg = load_err(&setup("rk3588", &good, None), &bare, &models);
    assert_has(&msg, &["no NPU build for rk3588", "models/convert.py"]);

    // The manifest names an NPU build that is not installed.
    std::fs::remove_file(models.join("fastestdet/FastestDet-rk3568.rknn")).expect("rm");
    let rk3568 = runtime(tmp.path(), "rk3568", "soc = \"rk3568\"\n");
    let msg = load_err(&setup("rk3568", &rk3568, None), &m, &models);
    assert_has(
        &msg,
        &[
            "FastestDet-rk3568.rknn for rk3568 is missing",
            "convert.py --soc rk3568",
        ],
    );

    // A board without an NPU.
    let msg = load_err(&setup("qemu-arm64", &good, None), &m, &models);
    assert_has(&msg, &["qemu-arm64", "no NPU"]);

    // Wrong input size: a model converted at 320×320 for a 352×352 manifest.
    let dir320 = tmp.path().join("m320");
    let (m320, models320) = npu_models(&dir320, |h| {
        h.input.width = 320;
        h.input.height = 320;
    });
    let msg = load_err(&setup("rk3588", &good, None), &m320, &models320);
    assert_has(&msg, &["[1, 320, 320, 3]", "[1, 352, 352, 3]"]);

    // The I/O style the runtime does not have.
    let zc_only = runtime(
        tmp.path(),
        "zc",
        "soc = \"rk3588\"\nzero_copy_only = true\n",
    );
    let backend = setup("rk3588", &zc_only, Some(boards::NpuApi::InputsSet));
    let mut det = model::detector(&m, &models, &backend, &person_opts()).expect("loads");
    let frame = decode_image(
        &std::fs::read(&image_paths()[0]).expect("read"),
        0,
        Timestamp(0),
    )
    .expect("decode");
    let msg = det
        .detect(&frame)
        .expect_err("inputs_set refused")
        .to_string();
    assert_has(&msg, &["zero-copy-only runtime", "npu.api = \"zero-copy\""]);

    // Driver and runtime versions that do not fit.
    let old = runtime(tmp.path(), "old", "driver_version = \"0.7.2\"\n");
    let msg = load_err(&setup("rk3588", &old, None), &m, &models);
    assert_has(&msg, &["NPU driver 0.7.2 is older than 0.8.0"]);
    let toolkit1 = runtime(tmp.path(), "tk1", "api_version = \"0.9.1\"\n");
    let msg = load_err(&setup("rk3588", &toolkit1, None), &m, &models);
    assert_has(&msg, &["runtime API 0.9.1 does not fit", "RKNN2"]);

    // A runtime that reports an error code while running.
    let broken = runtime(tmp.path(), "broken", "fail_run = -3\n");
    for api in [boards::NpuApi::InputsSet, boards::NpuApi::ZeroCopy] {
        let mut det = model::detector(
            &m,
            &models,
            &setup("rk3588", &broken, Some(api)),
            &person_opts(),
        )
        .expect("loads");
        let msg = det.detect(&frame).expect_err("run fails").to_string();
        assert_has(
            &msg,
            &["rknn_run", "RKNN_ERR_DEVICE_UNAVAILABLE (-3)", "NPU driver"],
        );
    }
}

/// The service picks its backend from `camera.board`: the NPU on a board
/// with one (the manifest's `.rknn` for its SoC), the CPU on one without,
/// or when the config says `backend = "cpu"`.
#[test]
fn the_config_board_chooses_the_backend() {
    use camera_app::config::{Config, DetectorBackend};
    use camera_app::runtime::setup::build_detector;

    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, models) = npu_models(tmp.path(), |_| {});
    // The CPU path verifies the ONNX weights beside the NPU builds.
    std::fs::copy(
        models_dir().join("fastestdet/FastestDet.onnx"),
        models.join("fastestdet/FastestDet.onnx"),
    )
    .expect("copy onnx");
    let lib = runtime(tmp.path(), "rk3588", "");
    let mut cfg = Config::default_config().expect("default config");
    cfg.detector.models_dir = Some(models.clone());
    cfg.detector.npu_runtime = Some(lib);

    let backend = |cfg: &Config| build_detector(cfg).expect("detector").1.backend_name();
    assert_eq!(backend(&cfg), "rten", "no board: CPU");
    cfg.camera.board = Some("rk3588".into());
    assert_eq!(backend(&cfg), "rknn", "rk3588: its NPU");
    cfg.detector.backend = DetectorBackend::Cpu;
    assert_eq!(backend(&cfg), "rten", "backend = cpu");
    cfg.detector.backend = DetectorBackend::Auto;
    cfg.camera.board = Some("qemu-arm64".into());
    assert_eq!(backend(&cfg), "rten", "a board without an NPU");

    // A config asking for the NPU where there is none is refused whole.
    let text = "[camera]\nboard = \"qemu-arm64\"\n[source]\nkind = \"synthetic\"\n\
                [detector]\nbackend = \"rknn\"\n";
    let err = Config::parse(text, "test")
        .expect_err("rknn on qemu-arm64")
        .to_string();
    assert!(err.contains("board qemu-arm64 has no NPU"), "{err}");
    let err = Config::parse(
        "[camera]\nboard = \"rk9999\"\n[source]\nkind = \"synthetic\"\n",
        "test",
    )
    .expect_err("unknown board")
    .to_string();
    assert!(
        err.contains("camera.board") && err.contains("rk3588"),
        "{err}"
    );
}
