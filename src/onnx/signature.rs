//! A check of a velocity model's signature without onnxruntime: the bytes decode as an ONNX `ModelProto`
//! whose graph takes `x` f32 `[batch, D]` and `t` f64 `[batch, 1]` and returns `v` f32 `[batch, D]`.
//!
//! A detector whose candidate pool is stored in its bundle never runs the model at open; this check keeps a
//! damaged or foreign ONNX section an error at open (milliseconds of protobuf decoding) rather than on the
//! first generate call.

use prost::Message as _;

use super::proto::{
    tensor_proto::DataType, tensor_shape_proto::dimension::Value, type_proto, ModelProto, ValueInfoProto,
};
use super::{OnnxError, INPUT_T, INPUT_X, OUTPUT_V};

/// Checks that `model` is a velocity field over D = `dim` weights (names, element types and fixed widths of
/// its inputs and output, as [`super::export_velocity`] declares them).
pub fn check_velocity_signature(model: &[u8], dim: usize) -> Result<(), OnnxError> {
    let bad = |reason: String| OnnxError::Signature(reason);
    let model = ModelProto::decode(model).map_err(|e| bad(format!("not an ONNX model: {e}")))?;
    let graph = model.graph.ok_or_else(|| bad("the model has no graph".into()))?;
    let names = |values: &[ValueInfoProto]| values.iter().map(|v| v.name().to_string()).collect::<Vec<_>>();
    let (inputs, outputs) = (names(&graph.input), names(&graph.output));
    if inputs != [INPUT_X, INPUT_T] || outputs != [OUTPUT_V] {
        return Err(bad(format!(
            "inputs {inputs:?}, outputs {outputs:?}; expected [{INPUT_X:?}, {INPUT_T:?}], [{OUTPUT_V:?}]"
        )));
    }
    check_value(&graph.input[0], DataType::Float, dim)?;
    check_value(&graph.input[1], DataType::Double, 1)?;
    check_value(&graph.output[0], DataType::Float, dim)
}

/// `value` is a rank-2 tensor of `elem` whose second dimension is the fixed `width`.
fn check_value(value: &ValueInfoProto, elem: DataType, width: usize) -> Result<(), OnnxError> {
    let bad = |what: String| OnnxError::Signature(format!("{} {what}", value.name()));
    let tensor = match value.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        _ => return Err(bad("is not a tensor".into())),
    };
    if tensor.elem_type() != elem as i32 {
        return Err(bad(format!("has element type {}, expected {}", tensor.elem_type(), elem.as_str_name())));
    }
    let dims: Vec<Option<i64>> = tensor
        .shape
        .as_ref()
        .map(|s| s.dim.iter().map(|d| if let Some(Value::DimValue(v)) = d.value { Some(v) } else { None }).collect())
        .unwrap_or_default();
    if dims.len() != 2 || dims[1] != Some(width as i64) {
        return Err(bad(format!("has dims {dims:?}, expected [batch, {width}]")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{export_velocity, DenseLayer, VelocitySpec};

    fn spec(d: usize) -> VelocitySpec {
        let layer =
            |inp: usize, out: usize| DenseLayer { out, inp, weight: vec![0.1; inp * out], bias: vec![0.0; out] };
        let hidden = vec![layer(d + 4, 8)];
        VelocitySpec { dim: d, scale: vec![1.0; d], freqs: vec![1.0, 2.0], hidden, head: layer(8, d), endpoint: None }
    }

    #[test]
    fn an_exported_model_passes_and_another_width_or_junk_fails() {
        let bytes = export_velocity(&spec(5)).unwrap();
        check_velocity_signature(&bytes, 5).unwrap();
        let err = check_velocity_signature(&bytes, 6).unwrap_err().to_string();
        assert!(err.contains("expected [batch, 6]"), "{err}");
        let err = check_velocity_signature(&[1, 2, 3], 5).unwrap_err().to_string();
        assert!(err.contains("not an ONNX model") || err.contains("no graph"), "{err}");
        let err = check_velocity_signature(&[], 5).unwrap_err().to_string();
        assert!(err.contains("no graph"), "{err}");
    }
}
