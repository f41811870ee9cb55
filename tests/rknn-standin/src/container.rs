//! The stand-in's model file: what `rknn-toolkit2` would have baked into a
//! `.rknn` (target platform, input normalisation, output quantisation), with
//! the ONNX model in place of the compiled NPU graph.
//!
//! ```text
//! "RKNNSTD1"        magic (a real .rknn starts with "RKNN" too)
//! u32 LE            header length
//! header            JSON, see `Header`
//! ONNX model        the rest of the file
//! ```

use rten::ModelOptions;
use rten_tensor::{NdTensor, NdTensorView};
use serde::{Deserialize, Serialize};

pub const MAGIC: &[u8; 8] = b"RKNNSTD1";

/// What the stand-in needs to know about a packed model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The platform it was "converted" for: rk3588, rk3568, rv1106.
    pub target: String,
    pub input: InputDesc,
    pub outputs: Vec<OutputQuant>,
}

/// The model's image input, as rknn-toolkit2's `config(mean_values,
/// std_values)` describes it: `real = (pixel - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputDesc {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// How one output leaves the NPU: affine int8, `real = (q - zero_point) *
/// scale`, or float16 (rknn-toolkit2's hybrid quantisation keeps the last
/// layers of FastestDet in fp16).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputQuant {
    pub name: String,
    pub zero_point: i32,
    pub scale: f32,
    #[serde(default)]
    pub dtype: OutputType,
}

/// Element type of an output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputType {
    #[default]
    Int8,
    Float16,
}

/// Split a packed model into its header and ONNX bytes.
pub fn parse(bytes: &[u8]) -> Result<(Header, &[u8]), String> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or("not a stand-in RKNN model (bad magic)")?;
    let (len, rest) = rest.split_at_checked(4).ok_or("truncated header length")?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let (json, onnx) = rest.split_at_checked(len).ok_or("truncated header")?;
    let header: Header = serde_json::from_slice(json).map_err(|e| format!("header: {e}"))?;
    Ok((header, onnx))
}

/// "Convert" an ONNX model for `target`: calibrate the int8 quantisation of
/// each output from `calibration` inputs (f32 NCHW, already normalised) the
/// way a post-training quantiser does, from the observed min and max.
pub fn pack(
    onnx: &[u8],
    target: &str,
    input: InputDesc,
    calibration: &[Vec<f32>],
) -> Result<Vec<u8>, String> {
    let header = calibrate(onnx, target, input, calibration)?;
    Ok(write(&header, onnx))
}

/// The header [`pack`] would write, without the model.
pub fn calibrate(
    onnx: &[u8],
    target: &str,
    mut input: InputDesc,
    calibration: &[Vec<f32>],
) -> Result<Header, String> {
    if calibration.is_empty() {
        return Err("no calibration inputs".into());
    }
    let model = ModelOptions::with_all_ops()
        .load(onnx.to_vec())
        .map_err(|e| format!("onnx: {e}"))?;
    let input_id = *model.input_ids().first().ok_or("model has no input")?;
    let output_ids = model.output_ids().to_vec();
    if input.name.is_empty() {
        input.name = model
            .node_info(input_id)
            .and_then(|n| n.name().map(str::to_string))
            .unwrap_or_else(|| "input".into());
    }
    let (h, w) = (input.height as usize, input.width as usize);
    let mut ranges = vec![(0.0f32, 0.0f32); output_ids.len()];
    for data in calibration {
        if data.len() != 3 * h * w {
            return Err(format!(
                "calibration input has {} values, the input is 3×{h}×{w}",
                data.len()
            ));
        }
        let x = NdTensorView::from_data([1, 3, h, w], data.as_slice());
        let outs = model
            .run(vec![(input_id, x.into())], &output_ids, None)
            .map_err(|e| format!("run: {e}"))?;
        for (range, out) in ranges.iter_mut().zip(outs) {
            let t: NdTensor<f32, 4> = out
                .try_into()
                .map_err(|e| format!("output is not a 4-D f32 tensor: {e:?}"))?;
            for &v in t.into_data().iter() {
                range.0 = range.0.min(v);
                range.1 = range.1.max(v);
            }
        }
    }
    let outputs = output_ids
        .iter()
        .zip(&ranges)
        .map(|(&id, &(lo, hi))| {
            let name = model
                .node_info(id)
                .and_then(|n| n.name().map(str::to_string))
                .unwrap_or_else(|| format!("output{id:?}"));
            let scale = ((hi - lo) / 255.0).max(f32::EPSILON);
            let zero_point = (-128.0 - lo / scale).round() as i32;
            OutputQuant {
                name,
                zero_point,
                scale,
                dtype: OutputType::Int8,
            }
        })
        .collect();
    Ok(Header {
        target: target.to_string(),
        input,
        outputs,
    })
}

/// Lay out a model file.
pub fn write(header: &Header, onnx: &[u8]) -> Vec<u8> {
    // Serialising plain strings and numbers cannot fail.
    let json = serde_json::to_vec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + json.len() + onnx.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(onnx);
    out
}

/// Quantise `v` to int8 with `q`.
pub fn quantise(v: f32, q: &OutputQuant) -> i8 {
    (v / q.scale + q.zero_point as f32)
        .round()
        .clamp(-128.0, 127.0) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_other_files() {
        assert!(parse(b"\x08\x01onnx").is_err());
        assert!(parse(b"RKNNSTD1\x10\0\0\0{}").is_err());
        let mut ok = MAGIC.to_vec();
        let json = br#"{"target":"rk3588","input":{"name":"i","width":2,"height":2,"mean":[0,0,0],"std":[1,1,1]},"outputs":[]}"#;
        ok.extend_from_slice(&(json.len() as u32).to_le_bytes());
        ok.extend_from_slice(json);
        ok.extend_from_slice(b"ONNX");
        let (h, onnx) = parse(&ok).expect("parse");
        assert_eq!((h.target.as_str(), onnx), ("rk3588", b"ONNX".as_slice()));
    }

    #[test]
    fn quantise_round_trips_within_half_a_step() {
        let q = OutputQuant {
            name: "o".into(),
            zero_point: -28,
            scale: 0.05,
            dtype: OutputType::Int8,
        };
        for v in [-5.0f32, -1.23, 0.0, 0.7, 7.6] {
            let back = (f32::from(quantise(v, &q)) - q.zero_point as f32) * q.scale;
            assert!((back - v).abs() <= 0.025 + 1e-6, "{v} -> {back}");
        }
    }
}
