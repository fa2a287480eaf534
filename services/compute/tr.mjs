import { loadConfig } from "./dist/config.js";
import { openSource } from "./dist/sources/open-source.js";
import { createLogger } from "@pangea/kit";
const [path, policy] = process.argv.slice(2);
const c = loadConfig(["--data", path, "--format", "instance", "--feature-list", "/work/t74data/fl.json", "--eval-fraction", "0", "--on-bad-record", policy, "--cache-dir", "/tmp/tr-cache-" + Math.random()], {});
try { const s = await openSource(c, createLogger("t", "silent")); console.log(s.info.trainRecords, s.info.skippedRecords, s.info.skippedSummary); } catch (e) { console.log("ERR", e.message); }
