//! A small builder of ONNX graphs over the prost types: named values, nodes and initializers, so that export
//! code reads like the forward pass it mirrors.

use prost::Message as _;

use super::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, tensor_shape_proto::dimension,
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};

/// The ONNX IR version written (ONNX 1.13+; onnxruntime ≥ 1.14 reads it).
pub(crate) const IR_VERSION: i64 = 8;
/// The default-domain opset written: every operator used here exists unchanged in it.
pub(crate) const OPSET: i64 = 17;

/// Element type of a graph input, output or initializer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    F32,
    F64,
}

impl Elem {
    fn code(self) -> i32 {
        match self {
            Elem::F32 => DataType::Float as i32,
            Elem::F64 => DataType::Double as i32,
        }
    }
}

/// One dimension of a declared input or output: fixed, or a symbolic name such as the batch size.
#[derive(Debug, Clone)]
pub(crate) enum Dim {
    Fixed(usize),
    Named(&'static str),
}

/// A graph under construction; value names are generated unique (`{hint}_{n}`).
#[derive(Debug, Default)]
pub(crate) struct GraphBuilder {
    graph: GraphProto,
    counter: usize,
}

impl GraphBuilder {
    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}_{}", self.counter)
    }

    /// Declares a graph input.
    pub(crate) fn input(&mut self, name: &str, elem: Elem, dims: &[Dim]) -> String {
        self.graph.input.push(value_info(name, elem, dims));
        name.to_string()
    }

    /// Declares `value` as the graph output `name` (through an Identity node, so the name is stable).
    pub(crate) fn output(&mut self, value: &str, name: &str, elem: Elem, dims: &[Dim]) {
        self.graph.node.push(node("Identity", &[value], name, Vec::new()));
        self.graph.output.push(value_info(name, elem, dims));
    }

    /// A float initializer of shape `dims` (row-major `data`).
    pub(crate) fn f32_tensor(&mut self, hint: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let name = self.fresh(hint);
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.graph.initializer.push(tensor(&name, Elem::F32, dims, raw));
        name
    }

    /// A double initializer of shape `dims`.
    pub(crate) fn f64_tensor(&mut self, hint: &str, dims: &[usize], data: &[f64]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let name = self.fresh(hint);
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.graph.initializer.push(tensor(&name, Elem::F64, dims, raw));
        name
    }

    /// A node `op(inputs…)` with integer attributes; returns its (single) output's name.
    pub(crate) fn op(&mut self, op: &str, inputs: &[&str], ints: &[(&str, i64)]) -> String {
        let out = self.fresh(&op.to_lowercase());
        let attrs = ints
            .iter()
            .map(|&(name, i)| AttributeProto {
                name: Some(name.to_string()),
                r#type: Some(AttributeType::Int as i32),
                i: Some(i),
                ..Default::default()
            })
            .collect();
        self.graph.node.push(node(op, inputs, &out, attrs));
        out
    }

    /// Shorthand for a binary operator.
    pub(crate) fn bin(&mut self, op: &str, a: &str, b: &str) -> String {
        self.op(op, &[a, b], &[])
    }

    /// Casts to `elem`.
    pub(crate) fn cast(&mut self, x: &str, elem: Elem) -> String {
        self.op("Cast", &[x], &[("to", elem.code() as i64)])
    }

    /// The serialised model (`ModelProto` bytes).
    pub(crate) fn finish(mut self, graph_name: &str, producer: &str) -> Vec<u8> {
        self.graph.name = Some(graph_name.to_string());
        let model = ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
            producer_name: Some(producer.to_string()),
            producer_version: Some(crate::VERSION.to_string()),
            graph: Some(self.graph),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: Some(format!("{output}_node")),
        op_type: Some(op.to_string()),
        attribute,
        ..Default::default()
    }
}

fn tensor(name: &str, elem: Elem, dims: &[usize], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(elem.code()),
        name: Some(name.to_string()),
        raw_data: Some(raw),
        ..Default::default()
    }
}

fn value_info(name: &str, elem: Elem, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
                Dim::Named(s) => dimension::Value::DimParam(s.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem.code()),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
