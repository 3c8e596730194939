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

const player = {
  context: null,
  master: null,
  jobId: null,
  stems: {}, // role -> {buffer, gain, source, solo, muted, duration}
  expectedDuration: 0,
  playing: false,
  startTime: 0,
  loop: true,
  solo: {}, // kept per role across results, so a soloed part stays soloed after regenerating it
  muted: {},

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
    for (const [role, buffer] of entries) {
      const gain = this.context.createGain();
      gain.connect(this.master);
      this.stems[role] = { buffer, gain, source: null, duration: buffer.duration, length: buffer.length };
    }
    this.jobId = job.id;
    this.applyGains();
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
      source.connect(stem.gain);
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

  position() {
    if (!this.playing || !this.context) return 0;
    const elapsed = Math.max(0, this.context.currentTime - this.startTime);
    const duration = this.roles().length ? this.stems[this.roles()[0]].duration : 0;
    return this.loop && duration ? elapsed % duration : Math.min(elapsed, duration);
  },
};
window.stemforgePlayer = player; // the browser test reads the player's state here

// ------------------------------------------------------------ jobs list

const state = { jobs: [], selected: null, follow: null, model: null, pollTimer: null };

async function refreshJobs() {
  clearTimeout(state.pollTimer);
  let active = false;
  try {
    const list = await getJson("/jobs?limit=50");
    state.jobs = list.jobs;
    renderJobs();
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

function renderJobs() {
  const list = $("#jobs");
  list.replaceChildren(...state.jobs.map((job) => {
    const item = document.createElement("li");
    item.className = `job status-${job.status}` + (job.id === state.selected ? " selected" : "");
    item.dataset.id = job.id;
    item.dataset.status = job.status;
    const title = document.createElement("button");
    title.className = "title";
    title.textContent = job.title;
    title.title = `${job.id}: ${job.title}`;
    title.disabled = job.status !== "done";
    title.addEventListener("click", () => openJob(job.id, false));
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = job.status === "queued" && job.queue_position ? `queued #${job.queue_position}` : job.status;
    const remove = document.createElement("button");
    remove.className = "delete";
    const active = job.status === "queued" || job.status === "running";
    remove.textContent = active ? "cancel" : "remove";
    remove.addEventListener("click", async () => {
      try { await api(`/jobs/${job.id}`, { method: "DELETE" }); } catch (e) { $("#form-error").textContent = e.message; }
      if (job.id === state.selected) closeResult();
      refreshJobs();
    });
    item.append(title, badge, remove);
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
  }));
}

// ------------------------------------------------------------ compose

function formRequest() {
  const body = { prompt: $("#prompt").value.trim(), stems: $("#stems").checked };
  const numbers = { bars: parseInt, bpm: parseFloat, seed: parseInt, temperature: parseFloat, top_k: parseInt,
                    top_p: parseFloat, sample_rate: parseInt };
  for (const [name, parse] of Object.entries(numbers)) {
    const value = $(`#${name}`).value.trim();
    if (value !== "") body[name] = parse(value, 10);
  }
  for (const name of ["key", "genre", "density", "kit", "preset", "tail"]) {
    const value = $(`#${name}`).value.trim();
    if (value !== "") body[name] = value;
  }
  if ($("#dry").checked) body.dry = true;
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

async function openJob(jobId, autoplay) {
  const job = await getJson(`/jobs/${jobId}`);
  if (job.status !== "done") return;
  state.selected = jobId;
  renderJobs();
  $("#result").hidden = false;
  $("#result-title").textContent = job.title;
  $("#player-status").textContent = "loading stems…";
  $("#play").disabled = true;
  const [notes] = await Promise.all([getJson(`/jobs/${jobId}/notes`), player.load(job)]);
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
    api(href).then(async (response) => {
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

function renderStems(job, notes) {
  const run = job.run;
  const container = $("#stems-list");
  const roles = ROLES.filter((r) => r in (run.midi || {}) || r in (run.stems || {}));
  container.replaceChildren(...roles.map((role) => {
    const row = document.createElement("div");
    row.className = "stem";
    row.dataset.role = role;
    const side = document.createElement("div");
    side.className = "side";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = role;
    name.style.color = ROLE_COLORS[role];
    const buttons = document.createElement("div");
    buttons.className = "buttons";
    const solo = document.createElement("button");
    solo.className = "solo";
    solo.textContent = "S";
    solo.title = `solo ${role}`;
    solo.addEventListener("click", () => player.toggleSolo(role));
    const mute = document.createElement("button");
    mute.className = "mute";
    mute.textContent = "M";
    mute.title = `mute ${role}`;
    mute.addEventListener("click", () => player.toggleMute(role));
    const regenerate = document.createElement("button");
    regenerate.className = "regenerate";
    regenerate.textContent = "↻ new";
    regenerate.title = `regenerate the ${role}, keeping the other parts`;
    regenerate.addEventListener("click", () => submit({
      from_job: job.id, keep: roles.filter((r) => r !== role), stems: true,
    }));
    if (!(role in (run.stems || {}))) { solo.disabled = true; mute.disabled = true; }
    buttons.append(solo, mute, regenerate);
    const files = document.createElement("div");
    files.className = "files";
    if (run.stems && run.stems[role]) files.append(link("wav", downloadUrl(job.id, run.stems[role]), ""));
    if (run.midi && run.midi[role]) files.append(link("mid", downloadUrl(job.id, run.midi[role]), ""));
    side.append(name, buttons, files);
    const roll = document.createElement("div");
    roll.className = "roll";
    const canvas = document.createElement("canvas");
    const playhead = document.createElement("div");
    playhead.className = "playhead";
    roll.append(canvas, playhead);
    row.append(side, roll);
    requestAnimationFrame(() => drawRoll(canvas, notes, role));
    return row;
  }));
  renderStemStates();
}

function drawRoll(canvas, notes, role) {
  const track = notes.tracks[role];
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth * ratio;
  const height = canvas.clientHeight * ratio;
  canvas.width = width;
  canvas.height = height;
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

function renderStemStates() {
  for (const row of document.querySelectorAll(".stem")) {
    const role = row.dataset.role;
    row.querySelector(".solo").classList.toggle("on", !!player.solo[role]);
    row.querySelector(".mute").classList.toggle("on", !!player.muted[role]);
    row.classList.toggle("silent", role in player.stems && !player.audible(role));
  }
}

function renderDownloads(job) {
  const run = job.run;
  const box = $("#downloads");
  const zip = link("Download zip", `/jobs/${job.id}/zip`, "");
  zip.id = "download-zip";
  zip.className = "primary";
  box.replaceChildren(zip);
  if (run.mix) box.append(link("mix.wav", downloadUrl(job.id, run.mix), ""));
  if (run.midi && run.midi.full) box.append(link("full.mid", downloadUrl(job.id, run.midi.full), ""));
  box.append(link("run.json", downloadUrl(job.id, "run.json"), ""));
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
  requestAnimationFrame(animate);
}

// ------------------------------------------------------------ start-up

async function loadServiceInfo() {
  try {
    const model = await getJson("/models");
    state.model = model;
    $("#model-info").textContent =
      `model ${model.path.split("/").filter(Boolean).pop()} · ${model.genres.join(", ")} · up to ${model.service_max_bars} bars`;
    $("#bars").max = model.service_max_bars;
    const genre = $("#genre");
    genre.length = 1; // keep "from prompt"; this runs again after a token is entered
    for (const name of model.genres) genre.append(new Option(name, name));
    const sounds = await getJson("/sounds");
    const kit = $("#kit");
    kit.length = 1;
    for (const sound of sounds) kit.append(new Option(`${sound.name} (${sound.kind})`, sound.name));
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
