// stemforge page: compose, follow jobs, play stems in sync, solo/mute, regenerate a part, download.
// Plain browser JavaScript, no build step and nothing loaded from outside the service.
"use strict";

const ROLES = ["drums", "bass", "melody"];
const ROLE_COLORS = { drums: "#e4572e", bass: "#4cc38a", melody: "#4f9de0" };
const TOKEN_KEY = "stemforgeToken";
const $ = (selector) => document.querySelector(selector);

// ------------------------------------------------------------ API (bearer token from ?token= once)

function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token !== null) {
    localStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash); // keep it out of history
  }
}

function authHeaders() {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) $("#token-form").hidden = false;
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (typeof body.detail === "string") message = body.detail;
      else if (Array.isArray(body.detail) && body.detail.length) {
        const first = body.detail[0];
        message = first.msg.includes(":") ? first.msg : `${first.loc.slice(-1)[0]}: ${first.msg}`;
      }
    } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, message, response.headers.get("Retry-After"));
  }
  return response;
}

const getJson = async (path) => (await api(path)).json();
const fileUrl = (jobId, path) => `/jobs/${jobId}/files/${path.split("/").map(encodeURIComponent).join("/")}`;
const downloadUrl = (jobId, path) => `${fileUrl(jobId, path)}?download=1`; // served as an attachment

// ------------------------------------------------------------ player: all stems on one AudioContext clock

const VOLUME_FLOOR_DB = -60; // the fader's bottom stop means silence ("-∞ dB"), as on a desk
const METER_FLOOR_DB = -60;
const dbToGain = (db) => (db <= VOLUME_FLOOR_DB ? 0 : 10 ** (db / 20));

// Per stem: source -> volume (fader) -> panner -> gain (solo/mute gate) -> master, with an
// analyser on the gate's output. The fader, pan and gate nodes outlive the sources, so their
// settings hold through stop/play and looping; only the buffer sources are made per play.
const player = {
  context: null,
  master: null,
  jobId: null,
  stems: {}, // role -> {buffer, volume, panner, gain, analyser, source, solo, muted, duration}
  expectedDuration: 0,
  playing: false,
  startTime: 0,
  loop: true,
  // kept per role across results, so a soloed or levelled part stays so after regenerating it
  solo: {},
  muted: {},
  volumeDb: {},
  pan: {},

  ensureContext(sampleRate) {
    // The context runs at the stems' own rate, so decoding does not resample: buffers keep their exact length.
    if (this.context && this.context.sampleRate === sampleRate) return;
    if (this.context) this.context.close();
    this.context = new AudioContext({ sampleRate, latencyHint: "playback" });
    this.master = this.context.createGain();
    this.master.connect(this.context.destination);
  },

  async load(job) {
    this.stop();
    const run = job.run;
    this.ensureContext(run.sample_rate ?? undefined);
    const conditions = run.conditions;
    this.expectedDuration = (conditions.bars * 4 * 60) / conditions.bpm;
    const entries = await Promise.all(Object.entries(run.stems || {}).map(async ([role, path]) => {
      const data = await (await api(fileUrl(job.id, path))).arrayBuffer();
      const buffer = await this.context.decodeAudioData(data);
      return [role, buffer];
    }));
    for (const stem of Object.values(this.stems)) stem.gain.disconnect();
    this.stems = {};
    for (const [role, buffer] of entries) this.stems[role] = this.channelStrip(buffer);
    this.jobId = job.id;
    for (const role of this.roles()) this.applyMix(role);
    this.applyGains();
  },

  channelStrip(buffer) {
    const c = this.context;
    const volume = c.createGain();
    const panner = c.createStereoPanner();
    const gain = c.createGain();
    const analyser = c.createAnalyser();
    analyser.fftSize = 1024;
    volume.connect(panner).connect(gain).connect(this.master);
    gain.connect(analyser); // an analyser needs no output to be processed
    return { buffer, volume, panner, gain, analyser, source: null, duration: buffer.duration, length: buffer.length,
             samples: new Float32Array(analyser.fftSize) };
  },

  roles() {
    return ROLES.filter((r) => r in this.stems).concat(Object.keys(this.stems).filter((r) => !ROLES.includes(r)));
  },

  async play() {
    if (!this.context || !Object.keys(this.stems).length) return;
    if (this.context.state === "suspended") await this.context.resume();
    this.stop();
    const when = this.context.currentTime + 0.05; // one start time for every stem: sample-synchronous
    for (const role of this.roles()) {
      const stem = this.stems[role];
      const source = this.context.createBufferSource();
      source.buffer = stem.buffer;
      source.loop = this.loop;
      source.connect(stem.volume);
      source.start(when);
      stem.source = source;
    }
    const first = this.stems[this.roles()[0]].source;
    first.onended = () => { if (first === this.stems[this.roles()[0]]?.source) this.stop(); };
    this.startTime = when;
    this.playing = true;
    updateTransport();
  },

  stop() {
    for (const stem of Object.values(this.stems)) {
      if (stem.source) {
        stem.source.onended = null;
        try { stem.source.stop(); } catch (_) { /* never started */ }
        stem.source.disconnect();
        stem.source = null;
      }
    }
    this.playing = false;
    updateTransport();
  },

  setLoop(on) {
    this.loop = on;
    for (const stem of Object.values(this.stems)) if (stem.source) stem.source.loop = on;
  },

  toggleSolo(role) { this.solo[role] = !this.solo[role]; this.applyGains(); },
  toggleMute(role) { this.muted[role] = !this.muted[role]; this.applyGains(); },
  setVolume(role, db) { this.volumeDb[role] = db; this.applyMix(role); mixerChanged(); },
  setPan(role, pan) { this.pan[role] = pan; this.applyMix(role); mixerChanged(); },

  applyMix(role) {
    const stem = this.stems[role];
    if (!stem) return;
    stem.volume.gain.value = dbToGain(this.volumeDb[role] ?? 0);
    stem.panner.pan.value = this.pan[role] ?? 0;
  },

  audible(role) {
    const anySolo = this.roles().some((r) => this.solo[r]);
    return !this.muted[role] && (!anySolo || !!this.solo[role]);
  },

  applyGains() {
    for (const role of this.roles()) {
      const stem = this.stems[role];
      stem.solo = !!this.solo[role];
      stem.muted = !!this.muted[role];
      stem.gain.gain.value = this.audible(role) ? 1 : 0;
    }
    renderStemStates();
  },

  // The stem's peak level after fader, pan and solo/mute, in dBFS (-Infinity when silent).
  level(role) {
    const stem = this.stems[role];
    if (!stem || !this.playing) return -Infinity;
    stem.analyser.getFloatTimeDomainData(stem.samples);
    let peak = 0;
    for (const value of stem.samples) peak = Math.max(peak, Math.abs(value));
    return peak > 0 ? 20 * Math.log10(peak) : -Infinity;
  },

  position() {
    if (!this.playing || !this.context) return 0;
    const elapsed = Math.max(0, this.context.currentTime - this.startTime);
    const duration = this.roles().length ? this.stems[this.roles()[0]].duration : 0;
    return this.loop && duration ? elapsed % duration : Math.min(elapsed, duration);
  },
};
window.stemforgePlayer = player; // the browser test reads the player's state here

// ------------------------------------------------------------ jobs list

// runs: job id -> its run.json (take 1's); takes: job id -> every take's run.json, for a job with takes
const state = { jobs: [], selected: null, follow: null, model: null, pollTimer: null, runs: new Map(), takes: new Map() };
const fetchingRuns = new Set();

async function refreshJobs() {
  clearTimeout(state.pollTimer);
  let active = false;
  try {
    const list = await getJson("/jobs?limit=50");
    state.jobs = list.jobs;
    renderJobs();
    fetchMissingRuns();
    active = list.jobs.some((j) => j.status === "queued" || j.status === "running");
    const followed = state.follow && list.jobs.find((j) => j.id === state.follow);
    if (followed && followed.status === "done") {
      state.follow = null;
      await openJob(followed.id, $("#autoplay").checked);
    } else if (followed && (followed.status === "failed" || followed.status === "cancelled")) {
      state.follow = null;
    }
  } catch (error) {
    $("#form-error").textContent = error.message;
  }
  state.pollTimer = setTimeout(refreshJobs, active ? 250 : 4000);
}

// The list carries no run.json, and a title needs conditions and seeds (of a regeneration's
// parent too): fetch each finished job once, since a finished run folder never changes.
function fetchMissingRuns() {
  const wanted = new Set();
  for (const job of state.jobs) {
    if (job.status === "done") wanted.add(job.id);
    if (job.request.from_job) wanted.add(job.request.from_job);
  }
  for (const id of wanted) {
    if (state.runs.has(id) || fetchingRuns.has(id)) continue;
    fetchingRuns.add(id);
    getJson(`/jobs/${id}`)
      .then((job) => {
        if (job.status !== "done") return; // a parent still running: asked again on a later poll
        state.runs.set(id, job.run || null);
        if (job.takes) state.takes.set(id, job.takes);
        renderJobs();
      })
      .catch((error) => { if (error.status === 404) state.runs.set(id, null); }) // removed: title without it
      .finally(() => fetchingRuns.delete(id));
  }
}

const formatBpm = (bpm) => `${Number(bpm.toFixed(2))} bpm`;
const conditionsText = (c) => `${c.genre} · ${formatBpm(c.bpm)} · ${c.key} · ${c.bars} bars`;
const partsOf = (run) => ROLES.filter((role) => role in (run?.midi || {}));

// What tells jobs apart: conditions and seed of every finished job; for a regeneration, which
// parts were made again and the piece (with its seed) they were made against.
function jobTitle(job) {
  const run = state.runs.get(job.id);
  const from = job.request.from_job;
  const takes = job.request.takes > 1 ? `${job.request.takes} takes from seed` : "seed";
  if (!from) return run ? `${conditionsText(run.conditions)} · ${takes} ${run.seed}` : job.title;
  // regenerated from take N of a job with takes: that take's conditions and seed, not take 1's
  const fromTake = job.request.from_take;
  const parent = fromTake && state.takes.has(from) ? state.takes.get(from)[fromTake - 1] : state.runs.get(from);
  const kept = job.request.keep || [];
  const again = partsOf(parent || run).filter((role) => !kept.includes(role));
  const what = again.length ? `${again.join(" + ")} again` : "again";
  const takeText = fromTake ? `take ${fromTake}, ` : "";
  const origin = parent ? `from ${conditionsText(parent.conditions)} (${takeText}seed ${parent.seed})` : `from job ${from}`;
  if (!run) return `${what} · ${origin}`;
  if (parent && conditionsText(parent.conditions) === conditionsText(run.conditions)) {
    return `${what} · ${origin} · seed ${run.seed}`;
  }
  return `${what} · ${conditionsText(run.conditions)} · seed ${run.seed} · ${origin}`;
}

function renderJobs() {
  const list = $("#jobs");
  list.replaceChildren(...state.jobs.map(jobItem));
}

function jobItem(job) {
  const item = document.createElement("li");
  item.className = `job status-${job.status}` + (job.id === state.selected ? " selected" : "");
  item.dataset.id = job.id;
  item.dataset.status = job.status;
  const title = document.createElement("button");
  title.className = "title";
  title.textContent = jobTitle(job);
  title.title = `${job.id}${job.request.prompt ? `: “${job.request.prompt}”` : ""}`;
  title.disabled = job.status !== "done";
  title.addEventListener("click", () => openJob(job.id, false));
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = job.status === "queued" && job.queue_position ? `queued #${job.queue_position}` : job.status;
  item.append(title, badge, removeButton(job));
  const active = job.status === "queued" || job.status === "running";
  if (active) {
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = job.progress;
    const stage = document.createElement("p");
    stage.className = "stage";
    stage.textContent = job.stage || "waiting";
    item.append(bar, stage);
  }
  if (job.error) {
    const error = document.createElement("p");
    error.className = "error";
    error.textContent = job.error;
    const retry = document.createElement("button");
    retry.textContent = "retry";
    retry.addEventListener("click", () => submit(job.request));
    item.append(error, retry);
  }
  return item;
}

function removeButton(job) {
  const remove = document.createElement("button");
  remove.className = "delete";
  const active = job.status === "queued" || job.status === "running";
  remove.textContent = active ? "cancel" : "remove";
  remove.title = active ? "stop this job" : "delete this job and its files from the service";
  remove.addEventListener("click", async () => {
    // removing deletes the files on the service for good: ask first (cancelling loses nothing made yet)
    if (!active && !window.confirm(`Remove “${jobTitle(job)}” and delete its files?`)) return;
    try { await api(`/jobs/${job.id}`, { method: "DELETE" }); } catch (e) { $("#form-error").textContent = e.message; }
    if (job.id === state.selected) closeResult();
    refreshJobs();
  });
  return remove;
}

// ------------------------------------------------------------ compose

// A reference loop: sent once to POST /loops (tempo and key read there), then named by id in
// every request until cleared.
const referenceLoop = { id: null };

async function uploadReferenceLoop(file) {
  const status = $("#like-status");
  referenceLoop.id = null;
  if (!file) { status.textContent = ""; return; }
  status.textContent = `reading ${file.name}…`;
  try {
    const response = await api("/loops", { method: "POST", headers: { "Content-Type": file.type || "audio/wav" },
                                           body: file });
    const loop = await response.json();
    referenceLoop.id = loop.id;
    status.textContent = `${file.name}: ${loop.description.replace(/^the loop: /, "")}`;
  } catch (error) {
    status.textContent = error.message;
    $("#like").value = "";
  }
}

// ---- the request form, built from GET /schema (POST /jobs's JSON Schema, narrowed to this
// service): each request field's label, default, bounds, choices and help come from there, so a
// field added to the request appears on the page without editing it.

// shown beside the prompt; every other field folds under "More", grouped by the schema's x-group
const FEATURED_FIELDS = ["bars", "bpm", "key", "seed", "takes", "stems"];
// fields the page sets through controls of its own: the prompt box, the loop upload, a part's "↻ new"
const OWN_CONTROLS = new Set(["prompt", "like_loop", "keep", "from_job", "from_take"]);
const requestForm = new Map(); // field name -> {defaultValue, read()}

// The schema a field's value meets when set (an optional field's non-null branch), and whether it may be unset.
function valueSchema(property) {
  const branches = property.anyOf || [property];
  return { ...(branches.find((branch) => branch.type !== "null") || {}), nullable: branches.some((b) => b.type === "null") };
}

function buildForm(schema) {
  requestForm.clear();
  const featured = $("#featured-fields");
  const more = $("#more-fields");
  featured.replaceChildren();
  more.replaceChildren(more.querySelector("summary") || Object.assign(document.createElement("summary"), { textContent: "More" }));
  const groups = new Map(); // group key -> its fieldset, in the schema's order of groups
  const groupBox = (key) => {
    if (!groups.has(key)) {
      const box = document.createElement("fieldset");
      box.className = "controls";
      box.dataset.group = key;
      const legend = document.createElement("legend");
      legend.textContent = (schema["x-groups"]?.[key] || key || "other").split(" (")[0]; // "what to compose (flags ...)"
      box.append(legend);
      groups.set(key, box);
    }
    return groups.get(key);
  };
  for (const key of Object.keys(schema["x-groups"] || {})) groupBox(key);
  const { properties } = schema;
  for (const name of FEATURED_FIELDS) {
    if (properties[name]) featured.append(fieldControl(name, properties[name]));
  }
  for (const [name, property] of Object.entries(properties)) {
    if (OWN_CONTROLS.has(name) || FEATURED_FIELDS.includes(name)) continue;
    groupBox(property["x-group"]).append(fieldControl(name, property));
  }
  more.append(...[...groups.values()].filter((box) => box.children.length > 1)); // a legend alone: nothing to set
  if (properties.prompt?.maxLength) $("#prompt").maxLength = properties.prompt.maxLength;
}

// One labelled control: a menu for a field with choices (enum) or suggestions (examples), a
// checkbox for a boolean, a number box with the field's bounds, else a text box.
function fieldControl(name, property) {
  const value = valueSchema(property);
  const defaultValue = property.default ?? null;
  const choices = (property.enum || value.enum || property.examples || []).filter((choice) => choice !== null);
  const label = document.createElement("label");
  label.title = property.description || "";
  const caption = property.title || name;
  let control;
  let read;
  if (value.type === "boolean") {
    control = Object.assign(document.createElement("input"), { type: "checkbox", checked: defaultValue === true });
    read = () => control.checked;
    label.className = "check";
    label.append(control, ` ${caption}`);
  } else {
    if (choices.length) {
      control = document.createElement("select");
      if (defaultValue === null) control.append(new Option(property["x-unset"] || "default", ""));
      choices.forEach((choice, index) => control.append(new Option(String(choice), String(index))));
      const chosen = choices.findIndex((choice) => choice === defaultValue);
      if (chosen >= 0) control.value = String(chosen);
      read = () => (control.value === "" ? undefined : choices[Number(control.value)]);
    } else if (value.type === "integer" || value.type === "number") {
      control = Object.assign(document.createElement("input"), { type: "number", step: value.type === "integer" ? "1" : "any" });
      if (value.minimum !== undefined) control.min = value.minimum;
      if (value.maximum !== undefined) control.max = value.maximum;
      read = () => {
        const text = control.value.trim();
        return text === "" ? undefined : value.type === "integer" ? parseInt(text, 10) : parseFloat(text);
      };
    } else {
      control = Object.assign(document.createElement("input"), { type: "text", size: 10 });
      if (value.maxLength !== undefined) control.maxLength = value.maxLength;
      read = () => readText(control.value, value.type);
    }
    if (control.tagName === "INPUT") {
      if (defaultValue !== null && !(typeof defaultValue === "object" && !Object.keys(defaultValue).length)) {
        control.value = String(defaultValue);
      }
      control.placeholder = property["x-unset"] || "";
    }
    label.append(`${caption} `, control);
  }
  // ids are prefixed so that no request field can take the id of another element of the page (the player's #loop)
  Object.assign(control, { id: `field-${name}`, name });
  requestForm.set(name, { defaultValue, read });
  return label;
}

// A text box's value as the field's type: a list is comma-separated ("drums, bass"), an object
// "key=value" pairs ("bass=33, melody=Electric Piano 1"); empty means unset.
function readText(text, type) {
  const parts = text.split(",").map((part) => part.trim()).filter(Boolean);
  if (type === "array") return parts.length ? parts : undefined;
  if (type === "object") {
    if (!parts.length) return undefined;
    return Object.fromEntries(parts.map((part) => [part.split("=")[0].trim(), part.split("=").slice(1).join("=").trim()]));
  }
  return text.trim() === "" ? undefined : text.trim();
}

// The request the form makes: the prompt, and every field the user set to other than its default.
function formRequest() {
  const body = { prompt: $("#prompt").value.trim() };
  for (const [name, field] of requestForm) {
    const value = field.read();
    if (value !== undefined && JSON.stringify(value) !== JSON.stringify(field.defaultValue)) body[name] = value;
  }
  if (referenceLoop.id) body.like_loop = referenceLoop.id;
  return body;
}

async function submit(body) {
  $("#form-error").textContent = "";
  const button = $("#compose-button");
  button.disabled = true;
  try {
    const job = await (await api("/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    })).json();
    state.follow = job.id;
    await refreshJobs();
  } catch (error) {
    const wait = error.status === 429 && error.retryAfter ? ` (retry in ${error.retryAfter} s)` : "";
    $("#form-error").textContent = error.message + wait;
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------ result: stems, piano roll, downloads

// A drop onto the desktop or a DAW downloads with no Authorization header: with a token, the
// service gives each job a signed query (`exp=...&sig=...`) that opens that job's files.
const fileQueries = new Map(); // job id -> signed query, or "" without a token

async function openJob(jobId, autoplay, take = 1) {
  const fetched = await getJson(`/jobs/${jobId}`);
  if (fetched.status !== "done") return;
  fileQueries.set(fetched.id, fetched.file_query || "");
  state.runs.set(fetched.id, fetched.run);
  if (fetched.takes) state.takes.set(fetched.id, fetched.takes);
  // a job with takes: the page shows one take at a time (its run, notes, files, regenerate)
  const job = fetched.takes ? { ...fetched, run: fetched.takes[take - 1], take } : fetched;
  state.selected = jobId;
  renderJobs();
  $("#result").hidden = false;
  $("#result-title").textContent = jobTitle(fetched);
  renderTakes(fetched, take, autoplay);
  $("#player-status").textContent = "loading stems…";
  $("#play").disabled = true;
  const notesUrl = fetched.takes ? `/jobs/${jobId}/notes?take=${take}` : `/jobs/${jobId}/notes`;
  const [notes] = await Promise.all([getJson(notesUrl), player.load(job)]);
  renderStems(job, notes);
  renderDownloads(job);
  renderEval(job.report);
  renderMessages(job.run);
  $("#player-status").textContent = Object.keys(player.stems).length
    ? `${player.roles().length} stems · ${player.expectedDuration.toFixed(3)} s loop · ${player.context.sampleRate} Hz`
    : "no stems in this run (MIDI only)";
  $("#play").disabled = !Object.keys(player.stems).length;
  if (autoplay && Object.keys(player.stems).length) player.play();
}

function renderTakes(job, current, autoplay) {
  const box = $("#take-picker");
  box.hidden = !job.takes;
  if (!job.takes) { box.replaceChildren(); return; }
  box.replaceChildren(...job.takes.map((run, index) => {
    const take = index + 1;
    const choose = button(`take ${take} · seed ${run.seed}`, "take", `play take ${take} of ${job.takes.length}`,
                          () => { player.stop(); openJob(job.id, autoplay, take); });
    choose.setAttribute("aria-pressed", String(take === current));
    choose.dataset.take = String(take);
    return choose;
  }));
}

function closeResult() {
  player.stop();
  state.selected = null;
  $("#result").hidden = true;
}

function link(text, href, download) {
  const a = document.createElement("a");
  a.textContent = text;
  a.href = href;
  if (download !== undefined) a.download = download;
  a.addEventListener("click", (event) => {
    if (!localStorage.getItem(TOKEN_KEY)) return; // the plain link works
    event.preventDefault(); // links cannot send the token header: fetch, then save the blob
    api(a.getAttribute("href")).then(async (response) => { // the href as it is now (the mixer may change it)
      const disposition = response.headers.get("Content-Disposition") || "";
      const named = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
      const url = URL.createObjectURL(await response.blob());
      const save = document.createElement("a");
      save.href = url;
      save.download = download || (named ? decodeURIComponent(named[1]) : href.split("/").pop().split("?")[0]);
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    }).catch((error) => { $("#form-error").textContent = error.message; });
  });
  return a;
}

// ---- drag out: a stem or MIDI clip dropped on the desktop or a DAW becomes that file

const MIME_TYPES = { wav: "audio/wav", mid: "audio/midi", json: "application/json", als: "application/octet-stream",
  dawproject: "application/zip" };
const baseName = (path) => path.split("/").pop();

// Chromium's drag-out format is "mime:file name:absolute URL"; the drop target downloads the
// URL itself, without this page's Authorization header (see the report on tokens).
function dragOutData(jobId, path) {
  const name = baseName(path);
  const mime = MIME_TYPES[name.split(".").pop().toLowerCase()] || "application/octet-stream";
  const signed = fileQueries.get(jobId);
  const url = new URL(downloadUrl(jobId, path) + (signed ? `&${signed}` : ""), window.location.href).href;
  return { name, mime, url, downloadUrl: `${mime}:${name}:${url}` };
}

function makeDraggable(element, jobId, path) {
  const data = dragOutData(jobId, path);
  element.draggable = true;
  element.classList.add("drag-out");
  element.dataset.file = data.name;
  element.title = `${data.name}: drag onto the desktop or a DAW, or click to download`;
  element.addEventListener("dragstart", (event) => {
    event.dataTransfer.effectAllowed = "copy";
    event.dataTransfer.setData("DownloadURL", data.downloadUrl);
    event.dataTransfer.setData("text/uri-list", data.url); // targets that take links instead of files
    event.dataTransfer.setData("text/plain", data.url);
  });
  return element;
}

function fileLink(text, jobId, path) {
  return makeDraggable(link(text, downloadUrl(jobId, path), ""), jobId, path);
}

// ---- one row per part: name, solo/mute/regenerate, fader and pan, meter, files; piano roll and waveform

function renderStems(job, notes) {
  const run = job.run;
  const roles = ROLES.filter((r) => r in (run.midi || {}) || r in (run.stems || {}));
  const scale = 1 / Math.max(1e-4, ...Object.values(player.stems).map((stem) => peakOf(stem.buffer)));
  $("#stems-list").replaceChildren(...roles.map((role) => stemRow(job, notes, role, roles, scale)));
  renderStemStates();
}

function stemRow(job, notes, role, roles, waveScale) {
  const run = job.run;
  const hasAudio = role in player.stems;
  const row = document.createElement("div");
  row.className = "stem";
  row.dataset.role = role;
  const side = document.createElement("div");
  side.className = "side";
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = role;
  name.style.color = ROLE_COLORS[role];
  side.append(name, stemButtons(job, role, roles, hasAudio));
  if (hasAudio) side.append(mixerControls(role), levelMeter(role));
  const files = document.createElement("div");
  files.className = "files";
  if (run.stems && run.stems[role]) files.append(fileLink("wav", job.id, run.stems[role]));
  if (run.midi && run.midi[role]) files.append(fileLink("mid", job.id, run.midi[role]));
  side.append(files);
  row.append(side, stemLane(job, notes, role, waveScale));
  return row;
}

function stemButtons(job, role, roles, hasAudio) {
  const buttons = document.createElement("div");
  buttons.className = "buttons";
  const solo = button("S", "solo", `solo ${role}`, () => player.toggleSolo(role));
  const mute = button("M", "mute", `mute ${role}`, () => player.toggleMute(role));
  const regenerate = button("↻ new", "regenerate", `regenerate the ${role}, keeping the other parts`, () => submit({
    from_job: job.id, keep: roles.filter((r) => r !== role), stems: true, ...(job.take ? { from_take: job.take } : {}),
  }));
  solo.disabled = mute.disabled = !hasAudio;
  buttons.append(solo, mute, regenerate);
  return buttons;
}

function button(text, className, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.title = label;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

const formatDb = (db) => (db <= VOLUME_FLOOR_DB ? "−∞ dB" : `${db > 0 ? "+" : db < 0 ? "−" : ""}${Math.abs(db).toFixed(1)} dB`);
const formatPan = (pan) => (pan === 0 ? "C" : `${pan < 0 ? "L" : "R"} ${Math.abs(pan)}`);

function mixerControls(role) {
  const box = document.createElement("div");
  box.className = "mixer";
  box.append(
    slider({ role, kind: "volume", caption: "vol", min: VOLUME_FLOOR_DB, max: 6, step: 0.5, neutral: 0,
             value: player.volumeDb[role] ?? 0, format: formatDb, set: (db) => player.setVolume(role, db) }),
    // pan in percent on the control (whole steps for the arrow keys), -1..1 on the StereoPannerNode
    slider({ role, kind: "pan", caption: "pan", min: -100, max: 100, step: 1, neutral: 0,
             value: Math.round((player.pan[role] ?? 0) * 100), format: formatPan,
             set: (percent) => player.setPan(role, percent / 100) }),
  );
  return box;
}

// A labelled range input (arrows, Page Up/Down, Home/End work as for any slider) with its
// reading beside it; a double click returns it to neutral.
function slider({ role, kind, caption, min, max, step, neutral, value, format, set }) {
  const label = document.createElement("label");
  label.className = `fader ${kind}`;
  const text = document.createElement("span");
  text.textContent = caption;
  const input = document.createElement("input");
  Object.assign(input, { type: "range", min, max, step, value });
  input.setAttribute("aria-label", `${role} ${kind}`);
  const reading = document.createElement("output");
  const show = () => {
    reading.textContent = format(Number(input.value));
    input.setAttribute("aria-valuetext", reading.textContent);
  };
  input.addEventListener("input", () => { set(Number(input.value)); show(); });
  input.addEventListener("dblclick", () => { input.value = neutral; set(neutral); show(); });
  show();
  label.append(text, input, reading);
  return label;
}

function levelMeter(role) {
  const meter = document.createElement("div");
  meter.className = "level";
  meter.setAttribute("aria-hidden", "true"); // live motion only; the sliders carry the settings
  meter.title = `${role} level`;
  const fill = document.createElement("div");
  fill.className = "fill";
  meter.append(fill);
  return meter;
}

function stemLane(job, notes, role, waveScale) {
  const run = job.run;
  const lane = document.createElement("div");
  lane.className = "roll";
  const roll = document.createElement("canvas");
  roll.className = "notes";
  if (run.midi && run.midi[role]) makeDraggable(roll, job.id, run.midi[role]); // the clip itself drags out
  lane.append(roll);
  const stem = player.stems[role];
  let wave = null;
  if (stem) {
    wave = document.createElement("canvas");
    wave.className = "wave";
    makeDraggable(wave, job.id, run.stems[role]);
    lane.append(wave);
  }
  // a form's sections as markers at their first bars (named on the first part's lane)
  const sections = (run.structure && run.structure.form && run.structure.form.sections) || [];
  for (const section of sections) {
    const mark = document.createElement("div");
    mark.className = "section-mark";
    mark.style.left = `${(100 * section.start_bar) / notes.bars}%`;
    mark.title = `${section.name}: bars ${section.start_bar + 1}-${section.start_bar + section.bars}`;
    mark.dataset.section = section.name;
    if (role === Object.keys(notes.tracks)[0]) mark.textContent = section.name;
    lane.append(mark);
  }
  const playhead = document.createElement("div");
  playhead.className = "playhead";
  lane.append(playhead);
  requestAnimationFrame(() => {
    drawRoll(roll, notes, role);
    if (wave) drawWave(wave, stem.buffer, role, waveScale);
  });
  return lane;
}

function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  canvas.height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  return ratio;
}

function drawRoll(canvas, notes, role) {
  const track = notes.tracks[role];
  const ratio = fitCanvas(canvas);
  const { width, height } = canvas;
  const g = canvas.getContext("2d");
  const totalTicks = notes.bars * notes.beats_per_bar * notes.ticks_per_beat;
  for (let beat = 0; beat <= notes.bars * notes.beats_per_bar; beat++) {
    g.fillStyle = beat % notes.beats_per_bar === 0 ? "#3a404c" : "#23272f";
    g.fillRect(Math.round((beat * notes.ticks_per_beat / totalTicks) * width), 0, ratio, height);
  }
  if (!track || !track.notes.length) return;
  const pitches = track.notes.map((n) => n[2]);
  const low = Math.min(...pitches) - 1;
  const high = Math.max(...pitches) + 1;
  const rowHeight = height / (high - low + 1);
  for (const [start, duration, pitch, velocity] of track.notes) {
    g.globalAlpha = 0.45 + 0.55 * (velocity / 127);
    g.fillStyle = ROLE_COLORS[role] || "#ccc";
    const x = (start / totalTicks) * width;
    const w = Math.max(2 * ratio, (duration / totalTicks) * width - ratio);
    g.fillRect(x, height - (pitch - low + 1) * rowHeight, w, Math.max(ratio, rowHeight - ratio));
  }
  g.globalAlpha = 1;
}

// Lowest and highest sample of any channel under each pixel column: min/max rather than an
// average keeps every transient visible however many samples fall on one pixel.
function peaks(buffer, columns) {
  const channels = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
  const low = new Float32Array(columns);
  const high = new Float32Array(columns);
  const perColumn = buffer.length / columns;
  for (let x = 0; x < columns; x++) {
    const start = Math.floor(x * perColumn);
    const end = Math.max(start + 1, Math.floor((x + 1) * perColumn));
    let min = 0;
    let max = 0;
    for (const data of channels) {
      for (let i = start; i < end && i < data.length; i++) {
        if (data[i] < min) min = data[i];
        if (data[i] > max) max = data[i];
      }
    }
    low[x] = min;
    high[x] = max;
  }
  return { low, high };
}

function peakOf(buffer) {
  let peak = 0;
  for (let c = 0; c < buffer.numberOfChannels; c++) {
    const data = buffer.getChannelData(c);
    for (let i = 0; i < data.length; i++) if (Math.abs(data[i]) > peak) peak = Math.abs(data[i]);
  }
  return peak;
}

// `scale` is one factor for all stems of a result (its loudest peak fills a lane), so the lanes
// are readable and a quiet stem still looks quieter than a loud one.
function drawWave(canvas, buffer, role, scale) {
  const ratio = fitCanvas(canvas);
  const { width, height } = canvas;
  const g = canvas.getContext("2d");
  const { low, high } = peaks(buffer, width);
  const middle = height / 2;
  g.fillStyle = "#2e333d";
  g.fillRect(0, Math.floor(middle), width, ratio); // the zero line, so silence reads as silence
  g.fillStyle = ROLE_COLORS[role] || "#ccc";
  for (let x = 0; x < width; x++) {
    const top = middle - Math.min(1, high[x] * scale) * middle;
    const bottom = middle - Math.max(-1, low[x] * scale) * middle;
    if (bottom - top >= 0.5) g.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

function renderStemStates() {
  for (const row of document.querySelectorAll(".stem")) {
    const role = row.dataset.role;
    row.querySelector(".solo").classList.toggle("on", !!player.solo[role]);
    row.querySelector(".mute").classList.toggle("on", !!player.muted[role]);
    row.classList.toggle("silent", role in player.stems && !player.audible(role));
  }
}

// The page's faders and pans as GET /jobs/{id}/zip and /mix take them: only stems off 0 dB or centre.
function mixerQuery() {
  const mixer = {};
  for (const role of Object.keys(player.stems)) {
    const volume_db = player.volumeDb[role] ?? 0;
    const pan = player.pan[role] ?? 0;
    if (volume_db !== 0 || pan !== 0) mixer[role] = { volume_db, pan };
  }
  return Object.keys(mixer).length ? `mixer=${encodeURIComponent(JSON.stringify(mixer))}` : "";
}

// The zip and the "mix as heard" download follow the mixer: the service re-renders the mix and
// writes the Live set (and DAWproject) with the same faders and pans.
function mixerChanged() {
  const query = mixerQuery();
  for (const a of document.querySelectorAll("#downloads a[data-mixed]")) {
    const base = a.dataset.mixed;
    a.setAttribute("href", query ? `${base}${base.includes("?") ? "&" : "?"}${query}` : base);
  }
}

function renderDownloads(job) {
  const run = job.run;
  const box = $("#downloads");
  const zip = link("Download zip", `/jobs/${job.id}/zip`, "");
  zip.id = "download-zip";
  zip.className = "primary";
  zip.dataset.mixed = `/jobs/${job.id}/zip`;
  zip.title = "the run folder; with the mixer moved, its mix and Live set carry your faders and pans";
  box.replaceChildren(zip);
  if (run.mix) {
    const take = run.folder ? `?take=${parseInt(run.folder.slice(4), 10)}` : "";
    const heard = link("Mix as heard", `/jobs/${job.id}/mix${take}`, "");
    heard.id = "download-mix-as-heard";
    heard.dataset.mixed = `/jobs/${job.id}/mix${take}`;
    heard.title = "the mix re-rendered with the faders and pans above";
    box.append(heard);
  }
  // the files' own names (genre, tempo, key, take), as they will land in a sample folder
  if (run.mix) box.append(fileLink(baseName(run.mix), job.id, run.mix));
  if (run.midi && run.midi.full) box.append(fileLink(baseName(run.midi.full), job.id, run.midi.full));
  if (run.live_set) box.append(fileLink(baseName(run.live_set), job.id, run.live_set)); // Ableton Live 12 set
  if (run.dawproject) box.append(fileLink(baseName(run.dawproject), job.id, run.dawproject)); // Bitwig, Studio One...
  mixerChanged();
  box.append(link("run.json", downloadUrl(job.id, run.folder ? `${run.folder}/run.json` : "run.json"), ""));
}

function renderEval(report) {
  const box = $("#eval");
  box.hidden = !report;
  if (!report) return;
  const rows = [];
  const walk = (value, path) => {
    if (rows.length >= 24) return;
    if (typeof value === "number") rows.push([path.join(" · "), Number.isInteger(value) ? value : value.toFixed(3)]);
    else if (value && typeof value === "object" && !Array.isArray(value) && path.length < 4) {
      for (const [k, v] of Object.entries(value)) walk(v, path.concat(k));
    }
  };
  walk({ fad: report.fad, novelty: report.novelty }, []);
  const table = document.createElement("table");
  for (const [name, value] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = name;
    tr.insertCell().textContent = value;
  }
  const heading = document.createElement("h2");
  heading.textContent = "Evaluation";
  box.replaceChildren(heading, table);
}

function renderMessages(run) {
  const items = [...(run.messages || []), ...(run.warnings || [])];
  $("#messages").replaceChildren(...items.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
}

function updateTransport() {
  const button = $("#play");
  if (button) button.textContent = player.playing ? "■ Stop" : "▶ Play";
}

function animate() {
  const duration = player.expectedDuration;
  const position = player.position();
  $("#position").textContent = `${Math.floor(position / 60)}:${(position % 60).toFixed(3).padStart(6, "0")}`;
  for (const head of document.querySelectorAll(".playhead")) {
    head.style.display = player.playing ? "block" : "none";
    if (duration) head.style.left = `${(position / duration) * 100}%`;
  }
  renderLevels();
  requestAnimationFrame(animate);
}

function renderLevels() {
  for (const fill of document.querySelectorAll(".stem .level .fill")) {
    const db = player.level(fill.closest(".stem").dataset.role);
    const share = Math.min(1, Math.max(0, (db - METER_FLOOR_DB) / -METER_FLOOR_DB));
    fill.style.transform = `scaleX(${share})`;
    fill.classList.toggle("hot", db > -1);
  }
}

// ------------------------------------------------------------ start-up

async function loadServiceInfo() {
  try {
    const model = await getJson("/models");
    state.model = model;
    $("#model-info").textContent =
      `model ${model.path.split("/").filter(Boolean).pop()} · ${model.genres.join(", ")} · up to ${model.service_max_bars} bars`;
    buildForm(await getJson("/schema")); // again after a token is entered
  } catch (error) {
    $("#model-info").textContent = error.message;
  }
  refreshHealth();
}

async function refreshHealth() {
  try {
    const health = await (await fetch("/health")).json();
    $("#health").textContent = `${health.status} · ${health.workers_ready}/${health.workers} workers`;
    $("#health").classList.toggle("ok", health.status === "ok");
  } catch (_) {
    $("#health").textContent = "offline";
  }
}

function main() {
  takeTokenFromUrl();
  $("#compose-form").addEventListener("submit", (event) => { event.preventDefault(); submit(formRequest()); });
  $("#like").addEventListener("change", (event) => uploadReferenceLoop(event.target.files[0]));
  $("#play").addEventListener("click", () => (player.playing ? player.stop() : player.play()));
  $("#loop").addEventListener("change", (event) => player.setLoop(event.target.checked));
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, $("#token-input").value);
    $("#token-form").hidden = true;
    loadServiceInfo();
    refreshJobs();
  });
  document.addEventListener("keydown", (event) => {
    if (event.code === "Space" && event.target === document.body && !$("#play").disabled) {
      event.preventDefault();
      player.playing ? player.stop() : player.play();
    }
  });
  loadServiceInfo();
  refreshJobs();
  setInterval(refreshHealth, 15000);
  requestAnimationFrame(animate);
}

document.addEventListener("DOMContentLoaded", main);
