import type * as grpc from "@grpc/grpc-js";
import type { Logger, PangeaError } from "@pangea/kit";
import { firstNonFinite, printable } from "@pangea/kit";
import { ParameterSyncService, toServiceError } from "@pangea/rpc";
import { MessageType, decodeMessage, encodeMessage, readFloat32, readIdWords, type ParameterSyncUpdate } from "@pangea/schema";
import { denseParams, parseModelSpec, specDifference } from "@pangea/model";
import { ServingErrors } from "../errors.js";
import type { ModelManager } from "../model/model-manager.js";
import type { Servable } from "../model/servable.js";
import type { MicroBatcher } from "../batching/micro-batcher.js";
import { isValidV2, slotOfV2 } from "@pangea/features";

/**
 * Serving's side of ParameterSync: training pushes the rows it changed, the
 * ids it evicted and now and then the dense weights; they are applied to the
 * version being served, between requests, so serving never pauses. Updates
 * from one sender run (a sender process: a new job or a restart is a new
 * run, with its own sequences from 1) arrive in order (sequence); one not
 * newer than the last applied from its run is ignored, counted in
 * syncIgnored, and its ack says so. An update is checked whole before any of
 * it is applied: one from another model (its modelIdentity differs from the
 * served version's), a mis-shaped or a non-finite one is refused
 * (INVALID_ARGUMENT, counted in syncRefused) and leaves the model as it was,
 * its sequence unrecorded. An older sender sends no run (sequences per
 * sender name) and no model (shapes checked only).
 */
export function addParameterSync(server: grpc.Server, models: ModelManager, batcher: MicroBatcher, log: Logger): void {
  const lastSequence = new Map<string, bigint>();
  /** The load of the served version each sender run last updated (a new one is logged). */
  const updating = new Map<string, string>();
  /** The last refusal's message: the same again (a job pushing every interval) is logged at debug, not as a warning each time. */
  let lastRefusal = "";
  // Applied while no forward pass runs (forward threads read the tables in place); updates keep their arrival order.
  server.addService(ParameterSyncService, {
    push: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      void batcher.exclusive(() => apply(call, cb)),
  });

  function apply(call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): void {
    try {
      const decoded = decodeMessage(call.request, MessageType.PARAMETER_SYNC_UPDATE, `parameter sync from ${call.getPeer()}`);
      const u = decoded.payload;
      // The message's own sender names it in every refusal; one that gives none is named by its connection.
      const sender = decoded.sender || `an unnamed sender at ${call.getPeer()}`;
      const servable = models.current();
      // Sync keeps a loaded version fresh; it cannot make the first one (a job's --export-dir writes that at its first checkpoint).
      if (!servable) throw ServingErrors.create("SERVING_ERR_NOT_READY", `no model version loaded to apply parameter sync from ${sender} to: sync updates a version serving has loaded; export one first (a job with --export-dir exports its first checkpoint, so give it a checkpoint cadence such as --checkpoint-every-steps)`);
      if (u.model) checkModel(u.model, servable.identity, servable.version, sender);
      const seq = u.sequence;
      const run = u.run;
      const key = run ? `${sender}\n${run}` : sender;
      const prev = lastSequence.get(key);
      let applied = 0;
      let removed = 0;
      let denseApplied = false;
      const ignored = prev !== undefined && seq <= prev;
      if (ignored) {
        models.syncIgnored++;
        log.warn({ sender, run, sequence: Number(seq), last: Number(prev), version: servable.version }, "parameter sync update ignored: not newer than one already applied from its sender run");
      } else {
        const checked = checkUpdate(u, servable, sender);
        // A job starting to overwrite the served rows, or going on into a version loaded since, is worth a line an
        // operator sees (the updates themselves are debug).
        if (updating.get(key) !== servable.loadId) {
          log.info({ sender, run, step: Number(u.step), version: servable.version }, "parameter sync: a sender run began updating the served version");
          updating.delete(key);
          updating.set(key, servable.loadId);
          if (updating.size > MAX_SENDER_RUNS) updating.delete(updating.keys().next().value!);
        }
        // Re-inserted so the map's order is by last use; the least recently heard runs go first past the bound.
        lastSequence.delete(key);
        lastSequence.set(key, seq);
        if (lastSequence.size > MAX_SENDER_RUNS) lastSequence.delete(lastSequence.keys().next().value!);
        // Evictions first: an update's rows are the table after them, so an id evicted and made again since the last
        // update (in both lists) keeps its new row.
        for (let i = 0; i < checked.tombstones.count; i++) {
          const lo = checked.tombstones.words[2 * i]!;
          const hi = checked.tombstones.words[2 * i + 1]!;
          if (servable.tables.get(slotOfV2(hi))?.remove(lo, hi)) removed++;
        }
        for (let i = 0; i < checked.count; i++) {
          const lo = checked.words[2 * i]!;
          const hi = checked.words[2 * i + 1]!;
          const table = servable.tables.get(slotOfV2(hi));
          if (!table) continue;
          table.set(lo, hi, checked.rows, checked.offsets ? checked.offsets[i]! : i * checked.width!);
          applied++;
        }
        if (checked.dense.length) {
          servable.setDense(checked.dense);
          denseApplied = true;
        }
        if (applied || removed) servable.generation++;
        servable.synced.rows += applied;
        servable.synced.tombstones += removed;
        if (denseApplied) servable.synced.dense++;
        servable.synced.lastAt = Date.now();
        servable.synced.sender = run ? `${sender} (run ${run})` : sender;
        lastRefusal = "";
        log.debug({ sender, run, sequence: Number(seq), step: Number(u.step), rows: applied, removed, dense: denseApplied, version: servable.version }, "parameter sync applied");
      }
      cb(null, encodeMessage(MessageType.PARAMETER_SYNC_ACK, "serving", (a) => {
        a.modelVersion = BigInt(servable.version);
        a.rowsApplied = BigInt(applied);
        a.rowsRemoved = BigInt(removed);
        a.denseApplied = denseApplied;
        a.ignored = ignored;
        a.loadId = servable.loadId;
      }));
    } catch (err) {
      if ((err as PangeaError).status === "INVALID_ARGUMENT") {
        models.syncRefused++;
        const message = (err as Error).message;
        const level = message === lastRefusal ? "debug" : "warn";
        lastRefusal = message;
        log[level]({ peer: call.getPeer(), err: message, refused: models.syncRefused }, "parameter sync update refused; nothing of it applied (the same refusal again is not logged as a warning)");
      }
      cb(toServiceError(err));
    }
  }
}

/** Sender runs whose last sequence is remembered; a run not heard from among the last this many would have its old updates applied again. */
const MAX_SENDER_RUNS = 4096;

/** Refuses an update whose model is not the served version's, naming the first difference. */
function checkModel(sent: string, served: string, version: number, sender: string): void {
  if (sent === served) return;
  let difference: string;
  try {
    difference = specDifference(parseModelSpec(JSON.parse(served)), parseModelSpec(JSON.parse(sent))) ?? `${sent} against ${served}`;
  } catch {
    difference = `${sent} against ${served}`;
  }
  throw ServingErrors.create("SERVING_ERR_OTHER_MODEL", `parameter sync from ${sender}: the update is from another model than version ${version}'s: ${difference}`);
}

interface CheckedUpdate {
  words: Uint32Array;
  count: number;
  /** Where each id's row starts when slots' widths differ (null: i * width). */
  offsets: Int32Array | null;
  width: number | null;
  rows: Float32Array;
  tombstones: { words: Uint32Array; count: number };
  /** The new dense weights (copies), or none. */
  dense: Float32Array[];
}

/** Reads and checks every part of an update against the served model; throws SERVING_ERR_BAD_INPUT naming the part. */
function checkUpdate(u: ParameterSyncUpdate, servable: Servable, sender: string): CheckedUpdate {
  const bad = (msg: string) => ServingErrors.create("SERVING_ERR_BAD_INPUT", `parameter sync from ${sender}: ${msg}`);
  const { words, count } = readIdWords(u.ids, `parameter sync from ${sender}: ids`);
  const tombstones = readIdWords(u.tombstones, `parameter sync from ${sender}: tombstones`);
  // A row or tombstone no table of the model could hold would be acknowledged as sent and dropped (applied 0):
  // a sender of another feature-id layout or another feature list, which should hear so.
  for (const [what, list] of [["ids", { words, count }], ["tombstones", tombstones]] as const) {
    const at = firstForeignId(list.words, list.count, servable.tables);
    if (at >= 0) throw bad(`${what}: ${foreignId(list.words, at, servable.tables)}`);
  }
  const layout = servable.layout;
  let offsets: Int32Array | null;
  try {
    offsets = layout.offsets(words, count);
  } catch (err) {
    throw bad(`ids: ${(err as Error).message}`);
  }
  const total = layout.total(words, count, offsets);
  const rows = readFloat32(u.rows, `parameter sync from ${sender}: rows`);
  // Rows that share one width may come as [count, width] (a sender whose tables all have one width); else side by side, [values].
  const shaped = rows.shape.length === 1 || (rows.shape.length === 2 && (count === 0 || rows.shape[0] === count));
  if (!shaped || rows.data.length !== total) {
    throw bad(`rows [${rows.shape.join(", ")}] do not match ${count} ids (${total} values at their slots' row widths ${layout.uniform ?? "(mixed)"})`);
  }
  const badValue = firstNonFinite(rows.data);
  if (badValue >= 0) throw bad(`rows: ${layout.uniform !== null ? `row ${Math.floor(badValue / layout.uniform)}` : `value ${badValue}`} holds ${rows.data[badValue]}`);
  const list = u.dense;
  const params = denseParams(servable.spec);
  const dense: Float32Array[] = [];
  if (list.length > 0) {
    if (list.length !== params.length) throw bad(`${list.length} dense tensors, the model has ${params.length}`);
    for (let i = 0; i < list.length; i++) {
      const p = params[i]!;
      const tensor = list.get(i);
      // By name as well as shape: a sender whose architecture declares its params otherwise (another build) would be
      // cut into the wrong tensors even where the shapes happen to agree.
      if (tensor.name !== p.name) throw bad(`dense tensor ${i} is ${JSON.stringify(printable(tensor.name, 80))}, where this serving's ${servable.spec.architecture.name} declares ${p.name} (another build's model?)`);
      const t = readFloat32(tensor, `parameter sync from ${sender}: ${p.name}`);
      if (t.shape.join() !== p.shape.join()) throw bad(`${p.name} has shape [${t.shape.join(", ")}], the model's is [${p.shape.join(", ")}]`);
      const at = firstNonFinite(t.data);
      if (at >= 0) throw bad(`${p.name} holds ${t.data[at]} at element ${at}`);
      dense.push(t.data.slice());
    }
  }
  return { words, count, offsets, width: layout.uniform, rows: rows.data, tombstones, dense };
}

/** The index of the first of count ids (lo, hi word pairs) that no table holds (a slot the model lacks, or the reserved top bit), or -1. */
function firstForeignId(words: Uint32Array, count: number, tables: ReadonlyMap<number, unknown>): number {
  for (let i = 0; i < count; i++) {
    const hi = words[2 * i + 1]!;
    if (!isValidV2(hi) || !tables.has(slotOfV2(hi))) return i;
  }
  return -1;
}

function foreignId(words: Uint32Array, i: number, tables: ReadonlyMap<number, unknown>): string {
  const hi = words[2 * i + 1]!;
  const id = `id ${i} (0x${hi.toString(16).padStart(8, "0")}${words[2 * i]!.toString(16).padStart(8, "0")})`;
  if (!isValidV2(hi)) return `${id} has the reserved top bit set, which no feature id has`;
  return `${id} is of slot ${slotOfV2(hi)}, which the served model does not have (its slots: ${[...tables.keys()].join(", ")})`;
}
