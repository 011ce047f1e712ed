/**
 * A small ONNX graph builder: graph inputs and outputs, initializers from typed arrays, nodes
 * with attributes, serialised as an ONNX `ModelProto` (opset 17, IR version 8) with protobufjs.
 *
 * Only the subset of onnx/onnx.proto that these models need is described below (field numbers
 * as upstream; names camelCased, as protobufjs's runtime objects use them). Enough for a
 * transformer; nothing here knows about CLIP (that is clip-onnx.ts).
 *
 * @example
 * const g = new OnnxGraph('tiny');
 * const x = g.input('x', 'float32', ['batch', 4]);
 * const y = g.op('MatMul', [x, g.init('w', new Float32Array(8), [4, 2])]);
 * g.output(y, 'y', 'float32', ['batch', 2]);
 * const bytes = g.toModel(); // Uint8Array, ready for onnxruntime
 */
import protobuf from 'protobufjs';

/** onnx.proto, the messages and fields this builder writes (and reads back in tests). */
const ONNX_SCHEMA = {
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: { type: 'int64', id: 1 },
            opsetImport: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 },
            producerName: { type: 'string', id: 2 },
            producerVersion: { type: 'string', id: 3 },
            docString: { type: 'string', id: 6 },
            graph: { type: 'GraphProto', id: 7 },
            metadataProps: { rule: 'repeated', type: 'StringStringEntryProto', id: 14 },
          },
        },
        OperatorSetIdProto: { fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } } },
        StringStringEntryProto: { fields: { key: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
        GraphProto: {
          fields: {
            node: { rule: 'repeated', type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: 'repeated', type: 'TensorProto', id: 5 },
            input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
            output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: 'repeated', type: 'string', id: 1 },
            output: { rule: 'repeated', type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            opType: { type: 'string', id: 4 },
            attribute: { rule: 'repeated', type: 'AttributeProto', id: 5 },
            domain: { type: 'string', id: 7 },
          },
        },
        AttributeProto: {
          fields: {
            name: { type: 'string', id: 1 },
            f: { type: 'float', id: 2 },
            i: { type: 'int64', id: 3 },
            s: { type: 'bytes', id: 4 },
            t: { type: 'TensorProto', id: 5 },
            floats: { rule: 'repeated', type: 'float', id: 7 },
            ints: { rule: 'repeated', type: 'int64', id: 8 },
            type: { type: 'int32', id: 20 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: 'repeated', type: 'int64', id: 1 },
            dataType: { type: 'int32', id: 2 },
            name: { type: 'string', id: 8 },
            rawData: { type: 'bytes', id: 9 },
          },
        },
        ValueInfoProto: { fields: { name: { type: 'string', id: 1 }, type: { type: 'TypeProto', id: 2 } } },
        TypeProto: { fields: { tensorType: { type: 'TypeProtoTensor', id: 1 } } },
        TypeProtoTensor: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } },
        TensorShapeProto: { fields: { dim: { rule: 'repeated', type: 'Dimension', id: 1 } } },
        Dimension: { fields: { dimValue: { type: 'int64', id: 1 }, dimParam: { type: 'string', id: 2 } } },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(ONNX_SCHEMA);
const ModelProto = root.lookupType('onnx.ModelProto');

/** The element types we use, with their TensorProto.DataType numbers. */
export type OnnxDType = 'float32' | 'int64' | 'int32' | 'bool' | 'int8' | 'uint8';
const DATA_TYPE: Record<OnnxDType, number> = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9 };

/** onnxruntime's contrib operator domain (DynamicQuantizeMatMul, …), version 1. */
export const MS_DOMAIN = 'com.microsoft';

/** AttributeProto.AttributeType */
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** A float attribute that happens to be a whole number (1.0 would otherwise be written as an int). */
export interface FloatAttr { float: number }
export const floatAttr = (v: number): FloatAttr => ({ float: v });
/**
 * Attribute values: integers → INT, other numbers → FLOAT, number[] → INTS, strings → STRING,
 * `floatAttr(x)` → FLOAT.
 */
export type AttrValue = number | number[] | string | FloatAttr;

/** A dimension: a fixed size, or a name for a size known only at run time (`'batch'`). */
export type Dim = number | string;

interface TensorMessage { name: string; dims: number[]; dataType: number; rawData: Uint8Array }

export const OPSET = 17;
/** ONNX IR version 8 is the one that goes with opset 17 (ONNX 1.12). */
export const IR_VERSION = 8;

function bytesOf(data: Float32Array | Int32Array | BigInt64Array | Uint8Array | Int8Array): Uint8Array {
  // Typed arrays are host-endian; ONNX raw_data is little-endian, as every machine we run on.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function valueInfo(name: string, dtype: OnnxDType, shape: readonly Dim[]) {
  const dim = shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType: DATA_TYPE[dtype], shape: { dim } } } };
}

/** One ONNX graph under construction. Every name it hands out is unique within the graph. */
export class OnnxGraph {
  private readonly nodes: object[] = [];
  private readonly initializers: TensorMessage[] = [];
  private readonly inputs: object[] = [];
  private readonly outputs: object[] = [];
  private readonly names = new Set<string>();
  private readonly domains = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  private fresh(base: string): string {
    let name = base;
    while (this.names.has(name)) name = `${base}_${++this.counter}`;
    this.names.add(name);
    return name;
  }

  /** Declare a graph input; returns its name. */
  input(name: string, dtype: OnnxDType, shape: readonly Dim[]): string {
    if (this.names.has(name)) throw new Error(`ONNX graph ${this.name}: the name ${name} is taken`);
    this.names.add(name);
    this.inputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  /** Declare `value` (a node's output) as the graph output `name`, via Identity when the names differ. */
  output(value: string, name: string, dtype: OnnxDType, shape: readonly Dim[]): void {
    if (value !== name) {
      if (this.names.has(name)) throw new Error(`ONNX graph ${this.name}: the name ${name} is taken`);
      this.names.add(name);
      this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: `${name}_identity` });
    }
    this.outputs.push(valueInfo(name, dtype, shape));
  }

  /**
   * A constant tensor stored in the model. Float32Array → float, Int32Array → int32,
   * BigInt64Array → int64, Int8Array → int8, Uint8Array → bool (or uint8 with `uint8`).
   */
  init(name: string, data: Float32Array | Int32Array | BigInt64Array | Uint8Array | Int8Array, dims: readonly number[], opts: { uint8?: boolean } = {}): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`ONNX initializer ${name}: ${data.length} values for shape [${dims.join(', ')}]`);
    const dtype: OnnxDType = data instanceof Float32Array ? 'float32' : data instanceof Int32Array ? 'int32' : data instanceof BigInt64Array ? 'int64'
      : data instanceof Int8Array ? 'int8' : opts.uint8 ? 'uint8' : 'bool';
    const unique = this.fresh(name);
    this.initializers.push({ name: unique, dims: [...dims], dataType: DATA_TYPE[dtype], rawData: bytesOf(data) });
    return unique;
  }

  /** An int64 constant (shapes, axes, indices): a 1-D tensor, or a scalar with `scalar`. */
  ints(name: string, values: readonly number[], scalar = false): string {
    return this.init(name, BigInt64Array.from(values.map(BigInt)), scalar ? [] : [values.length]);
  }

  /** A float scalar constant. */
  scalar(name: string, value: number): string {
    return this.init(name, Float32Array.of(value), []);
  }

  /**
   * Add a node; returns its output names (`outputs` of them), named after `name` or the op.
   *
   * @example
   * const [y] = g.node('Softmax', [x], { axis: -1 });
   */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, opts: { outputs?: number; name?: string; domain?: string } = {}): string[] {
    const base = opts.name ?? opType.toLowerCase();
    const outputs = Array.from({ length: opts.outputs ?? 1 }, (_, i) => this.fresh(`${base}${opts.outputs && opts.outputs > 1 ? `_out${i}` : ''}`));
    const attribute = Object.entries(attrs).map(([key, v]) => {
      if (typeof v === 'string') return { name: key, type: ATTR.STRING, s: new TextEncoder().encode(v) };
      if (Array.isArray(v)) return { name: key, type: ATTR.INTS, ints: v };
      if (typeof v === 'object') return { name: key, type: ATTR.FLOAT, f: v.float };
      return Number.isInteger(v) ? { name: key, type: ATTR.INT, i: v } : { name: key, type: ATTR.FLOAT, f: v };
    });
    const domain = opts.domain ?? '';
    if (domain) this.domains.add(domain);
    this.nodes.push({ opType, input: [...inputs], output: outputs, name: this.fresh(`${base}_node`), attribute, domain });
    return outputs;
  }

  /** `node` for the common single-output case. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.node(opType, inputs, attrs, name ? { name } : {})[0]!;
  }

  /** Serialise as an ONNX ModelProto. `metadata` lands in `metadata_props`. */
  toModel(opts: { producerVersion?: string; docString?: string; metadata?: Record<string, string> } = {}): Uint8Array {
    const message = {
      irVersion: IR_VERSION,
      // contrib domains (onnxruntime's com.microsoft) are at version 1
      opsetImport: [{ domain: '', version: OPSET }, ...[...this.domains].map((domain) => ({ domain, version: 1 }))],
      producerName: 'clip-studio',
      producerVersion: opts.producerVersion ?? '',
      docString: opts.docString ?? '',
      graph: { name: this.name, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs },
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    };
    // No fromObject/verify: the message is built to the schema above, and fromObject would
    // copy every weight buffer once more.
    return ModelProto.encode(message).finish();
  }
}

/** What a serialised model holds, decoded (for tests and diagnostics). */
export interface DecodedModel {
  irVersion: number;
  opset: number;
  /** Every operator set imported, the default domain ('') first. */
  opsets: { domain: string; version: number }[];
  metadata: Record<string, string>;
  graph: { name: string; nodes: { opType: string; domain: string; input: string[]; output: string[] }[]; initializers: { name: string; dims: number[]; dataType: number; bytes: number }[]; inputs: string[]; outputs: string[] };
}

/** Decode a ModelProto written by OnnxGraph (only the fields of the schema above). */
export function decodeModel(bytes: Uint8Array): DecodedModel {
  const m = ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, defaults: true }) as {
    irVersion: number; opsetImport: { domain: string; version: number }[]; metadataProps: { key: string; value: string }[];
    graph: { name: string; node: { opType: string; domain: string; input: string[]; output: string[] }[]; initializer: { name: string; dims: number[]; dataType: number; rawData: Uint8Array }[]; input: { name: string }[]; output: { name: string }[] };
  };
  return {
    irVersion: m.irVersion,
    opset: m.opsetImport[0]?.version ?? 0,
    opsets: m.opsetImport.map((o) => ({ domain: o.domain, version: o.version })),
    metadata: Object.fromEntries(m.metadataProps.map((p) => [p.key, p.value])),
    graph: {
      name: m.graph.name,
      nodes: m.graph.node.map((n) => ({ opType: n.opType, domain: n.domain, input: n.input, output: n.output })),
      initializers: m.graph.initializer.map((t) => ({ name: t.name, dims: t.dims, dataType: t.dataType, bytes: t.rawData.length })),
      inputs: m.graph.input.map((i) => i.name),
      outputs: m.graph.output.map((o) => o.name),
    },
  };
}
