//! Inference and detection conformance of the CPU backend against
//! onnxruntime's reference outputs for FastestDet (`../shared/models`).

mod common;

use camera_app::capture::Timestamp;
use camera_app::capture::files::decode_image;
use camera_app::model::{self, DetectorOptions, Manifest};
use camera_app::tensor::{Layout, Tensor, TensorData};
use common::{
    RefDet, compare, images_dir, models_dir, read_f32, reference_detections, reference_dir,
};

fn detector() -> (Manifest, camera_app::detect::Detector) {
    let m = Manifest::builtin("fastestdet").expect("manifest");
    let d = model::cpu_detector(&m, &models_dir(), &DetectorOptions::default())
        .expect("load FastestDet");
    (m, d)
}

/// Acceptance 1: output equals onnxruntime's within 1e-4 (max abs).
#[test]
fn cpu_backend_matches_onnxruntime_outputs() {
    let (_, mut det) = detector();
    for sample in ["coco_sample_0", "coco_sample_2"] {
        let input = read_f32(&reference_dir().join(format!("{sample}.input.f32")));
        let want = read_f32(&reference_dir().join(format!("{sample}.output.f32")));
        let t = Tensor::f32(vec![1, 3, 352, 352], Layout::Nchw, input);
        let outs = det.raw_outputs(&t).expect("infer");
        assert_eq!(outs.len(), 1);
        assert_eq!(outs[0].shape, vec![1, 85, 22, 22]);
        let TensorData::F32(got) = &outs[0].data else {
            panic!("f32 output expected")
        };
        assert_eq!(got.len(), want.len());
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{sample}: max abs diff {max:e}");
        assert!(max <= 1e-4, "{sample}: max abs diff {max} > 1e-4");
    }
}

/// Acceptance 2 at the library level: the whole pipeline (decode, resize,
/// normalise, infer, decode, NMS) finds the reference's people and cats.
#[test]
fn detections_match_the_reference_on_every_image() {
    let (m, mut det) = detector();
    let threshold = m.decoder.score_threshold;
    let mut problems = Vec::new();
    let reference = reference_detections();
    assert!(
        reference.len() >= 7,
        "reference lists {} images",
        reference.len()
    );
    for (name, w, h, refs) in reference {
        let bytes = std::fs::read(images_dir().join(&name)).expect("image");
        let frame = decode_image(&bytes, 0, Timestamp(0)).expect("decode");
        assert_eq!((frame.width, frame.height), (w, h), "{name}");
        let got: Vec<RefDet> = det
            .detect(&frame)
            .expect("detect")
            .iter()
            .map(|d| RefDet {
                class: m.label(d.class_id).into_owned(),
                score: d.score,
                bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
            })
            .collect();
        for class in ["person", "cat"] {
            problems.extend(compare(&name, class, threshold, &refs, &got));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The reference input tensor, decoded by our post-processing, gives the
/// reference boxes almost exactly (isolates decode + NMS from resizing).
#[test]
fn decode_of_reference_tensor_matches_reference_boxes() {
    let (m, mut det) = detector();
    let refs = reference_detections();
    let (_, w, h, want) = refs
        .iter()
        .find(|(n, ..)| n == "coco_sample_0.jpg")
        .expect("coco_sample_0 in reference");
    let input = read_f32(&reference_dir().join("coco_sample_0.input.f32"));
    let t = Tensor::f32(vec![1, 3, 352, 352], Layout::Nchw, input);
    let got = det.detect_tensor(&t, (*w, *h)).expect("detect");
    assert_eq!(got.len(), want.len(), "{got:?}");
    for r in want {
        let ok = got.iter().any(|g| {
            m.label(g.class_id) == r.class
                && (g.score - r.score).abs() < 1e-3
                && common::iou([g.bbox.x1, g.bbox.y1, g.bbox.x2, g.bbox.y2], r.bbox) > 0.99
        });
        assert!(ok, "reference {r:?} not reproduced in {got:?}");
    }
}

/// Our decode + area resize + BGR + 1/255 reproduces the reference input
/// tensor closely (JPEG decoders and resize kernels differ slightly).
#[test]
fn preprocessing_matches_the_reference_input() {
    use camera_app::preprocess::{Colorimetry, Preprocessor};
    let m = Manifest::builtin("fastestdet").expect("manifest");
    let mut pre = Preprocessor::new(m.input.clone(), Colorimetry::Bt601Limited);
    for sample in ["coco_sample_0", "coco_sample_2"] {
        let bytes = std::fs::read(images_dir().join(format!("{sample}.jpg"))).expect("image");
        let frame = decode_image(&bytes, 0, Timestamp(0)).expect("decode");
        let mut t = pre.new_input_tensor();
        pre.run(&frame, &mut t).expect("preprocess");
        let TensorData::F32(got) = &t.data else {
            panic!("f32")
        };
        let want = read_f32(&reference_dir().join(format!("{sample}.input.f32")));
        let diffs: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        let max = diffs.iter().copied().fold(0.0, f32::max);
        eprintln!("{sample}: preprocessing mean abs diff {mean:.5}, max {max:.4}");
        assert!(mean < 0.005, "{sample}: mean abs diff {mean}");
    }
}

/// A model whose input shape disagrees with its manifest is refused, and
/// the message names both shapes.
#[test]
fn input_shape_mismatch_is_refused_naming_both_shapes() {
    let mut m = Manifest::builtin("fastestdet").expect("manifest");
    m.input.width = 320;
    m.input.height = 320;
    let err = model::cpu_detector(&m, &models_dir(), &DetectorOptions::default())
        .expect_err("shape mismatch");
    let msg = err.to_string();
    assert!(msg.contains("[1, 3, 352, 352]"), "{msg}");
    assert!(msg.contains("[1, 3, 320, 320]"), "{msg}");
}
