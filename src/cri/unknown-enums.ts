/**
 * Enum values crisp does not know. proto3 enums are open: a value outside the proto's list
 * (from a newer CRI, or just a wrong number) is decoded as its number instead of its name, and
 * code that compares names would quietly read it as something else (an unknown stop signal, a
 * mount propagation or a namespace mode). This check walks a decoded request along the proto's
 * own descriptors and refuses such a value with INVALID_ARGUMENT naming the field, before the RPC
 * runs.
 */
import type { PackageDefinition } from '@grpc/proto-loader';
import { InvalidArgumentError } from '../errors.js';

interface FieldDescriptor {
  name: string;
  label: string;
  type: string;
  typeName: string;
}

interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nestedType?: { name: string; options?: { mapEntry?: boolean } | null }[];
}

/** A field that is an enum (`sub` undefined) or a message with enums somewhere below it. */
interface FieldPlan {
  name: string;
  typeName: string;
  sub: FieldPlan[] | undefined;
}

/** Throws InvalidArgumentError for an unknown enum value anywhere in `request` of `method`. */
export type RequestCheck = (method: string, request: unknown) => void;

function descriptorOf(def: PackageDefinition, name: string): MessageDescriptor | undefined {
  const entry = def[name];
  if (entry === undefined || !('format' in entry) || entry.format !== 'Protocol Buffer 3 DescriptorProto') {
    return undefined;
  }
  return entry.type as MessageDescriptor;
}

/** A checker for every method of the services under `pkg` in `def`. */
export function unknownEnumCheck(def: PackageDefinition, pkg = 'runtime.v1'): RequestCheck {
  const messages = new Map<string, MessageDescriptor>();
  const lookup = (typeName: string): MessageDescriptor | undefined => {
    const name = typeName.startsWith('.') ? typeName.slice(1) : `${pkg}.${typeName}`;
    let d = messages.get(name);
    if (d === undefined) {
      d = descriptorOf(def, name);
      if (d !== undefined) messages.set(name, d);
    }
    return d;
  };
  // Per message, only the fields that can lead to an enum (worked out once): most requests
  // (List*, *Status, stats) have none, and their check costs one map lookup.
  const plans = new Map<MessageDescriptor, FieldPlan[]>();
  const planOf = (d: MessageDescriptor): FieldPlan[] => {
    const known = plans.get(d);
    if (known !== undefined) return known;
    const plan: FieldPlan[] = [];
    plans.set(d, plan);
    for (const f of d.field) {
      if (f.type === 'TYPE_ENUM') {
        plan.push({ name: f.name, typeName: f.typeName, sub: undefined });
      } else if (f.type === 'TYPE_MESSAGE') {
        if (d.nestedType?.some((n) => n.name === f.typeName && n.options?.mapEntry === true)) continue;
        const sub = lookup(f.typeName);
        const subPlan = sub === undefined ? [] : planOf(sub);
        if (subPlan.length > 0) plan.push({ name: f.name, typeName: f.typeName, sub: subPlan });
      }
    }
    return plan;
  };
  const requests = new Map<string, FieldPlan[]>();
  for (const [name, entry] of Object.entries(def)) {
    if (!name.startsWith(`${pkg}.`) || 'format' in entry) continue;
    for (const [method, m] of Object.entries(entry)) {
      requests.set(method, planOf(m.requestType.type as MessageDescriptor));
    }
  }

  const walk = (value: unknown, plan: FieldPlan[], path: string, depth: number): void => {
    if (typeof value !== 'object' || value === null || depth > 32) return;
    const fields = value as Record<string, unknown>;
    for (const f of plan) {
      const v = fields[f.name];
      if (v === undefined || v === null) continue;
      const field = path === '' ? f.name : `${path}.${f.name}`;
      const sub = f.sub;
      if (sub === undefined) {
        const list: unknown[] = Array.isArray(v) ? v : [v];
        list.forEach((x, i) => {
          if (typeof x !== 'string') {
            throw new InvalidArgumentError(
              Array.isArray(v) ? `${field}[${i}]` : field,
              `${String(x)} is not a ${f.typeName} value crisp knows (it may come from a newer CRI than crisp speaks)`,
            );
          }
        });
      } else if (Array.isArray(v)) {
        v.forEach((x, i) => {
          walk(x, sub, `${field}[${i}]`, depth + 1);
        });
      } else walk(v, sub, field, depth + 1);
    }
  };

  return (method, request) => {
    const plan = requests.get(method);
    if (plan !== undefined && plan.length > 0) walk(request, plan, '', 0);
  };
}
