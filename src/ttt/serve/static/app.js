// The talk page: microphone -> 16 kHz WAV -> websocket; streamed text and audio chunks back, played in order.
// Protocol: docs/serve.md. No framework, no build step.
"use strict";

const TARGET_RATE = 16000;      // the codec's input rate; the page resamples the microphone to it
const VOICE_RMS = 0.015;        // a 128-frame block louder than this counts as speech
const SILENCE_TO_STOP = 0.8;    // seconds of quiet after speech that end a recording (when auto-stop is on)

const $ = (id) => document.getElementById(id);
const state = {
  ws: null, audio: null, worklet: false, playHead: 0, playChain: Promise.resolve(), sources: new Set(),
  received: 0, played: 0, done: 0, busy: false, recording: null, settings: {}, defaults: {}, knobs: [],
  maxSeconds: 20, maxHistory: 0, turns: {},
};

function setStatus(text) { $("status").textContent = text; }

function enable(on) {
  for (const id of ["record", "send", "reset"]) $(id).disabled = !on;
}

function updateStats() {
  const stats = $("stats");
  stats.dataset.received = state.received;
  stats.dataset.played = state.played;
  stats.textContent = `audio chunks received ${state.received}, played ${state.played}`;
  document.body.dataset.turnsDone = state.done;
}

// ---- conversation list ----

function bubble(kind, text) {
  const li = document.createElement("li");
  li.className = kind;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text || "";
  const meta = document.createElement("span");
  meta.className = "meta";
  li.append(body, meta);
  $("conversation").append(li);
  li.scrollIntoView({block: "nearest"});
  return li;
}

function turnBubbles(n) {
  if (!state.turns[n]) state.turns[n] = {user: null, assistant: bubble("assistant")};
  return state.turns[n];
}

// ---- playback: chunks are decoded in arrival order and scheduled back to back ----

function audioContext() {
  if (!state.audio) state.audio = new AudioContext();
  if (state.audio.state === "suspended") state.audio.resume();
  return state.audio;
}

function play(b64) {
  state.playChain = state.playChain.then(async () => {
    const ctx = audioContext();
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const buffer = await ctx.decodeAudioData(bytes.buffer);
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    const at = Math.max(ctx.currentTime + 0.03, state.playHead);
    source.onended = () => {
      if (state.sources.delete(source)) { state.played += 1; updateStats(); }
    };
    state.sources.add(source);
    source.start(at);
    state.playHead = at + buffer.duration;
  }).catch((err) => bubble("error", `could not play an audio chunk: ${err}`));
}

function stopPlayback() {
  const sources = [...state.sources];
  state.sources.clear();
  for (const s of sources) s.stop();
  state.playHead = 0;
}

// ---- websocket ----

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/v1/talk");
  ws.onmessage = (message) => handle(JSON.parse(message.data));
  ws.onclose = (event) => {
    enable(false);
    setStatus(`disconnected${event.reason ? ": " + event.reason : ""} — reload the page to reconnect`);
  };
  state.ws = ws;
}

function send(message) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) { bubble("error", "not connected"); return false; }
  state.ws.send(message);
  return true;
}

function handle(ev) {
  switch (ev.type) {
    case "ready":
      state.maxSeconds = ev.limits.max_audio_seconds;
      state.maxHistory = ev.limits.max_history_turns;
      applySettings(ev.settings);
      enable(true);
      setStatus("ready");
      break;
    case "turn": {
      const t = turnBubbles(ev.turn);
      t.user = bubble("user", ev.input === "text" ? ev.text : `(spoken question, ${ev.seconds.toFixed(1)} s)`);
      $("conversation").append(t.assistant);  // the answer goes below its question
      t.assistant.dataset.turn = ev.turn;
      setStatus("answering…");
      break;
    }
    case "text":
      turnBubbles(ev.turn).assistant.querySelector(".text").textContent += ev.delta;
      break;
    case "audio":
      state.received += 1;
      updateStats();
      play(ev.wav);
      break;
    case "done": {
      const t = turnBubbles(ev.turn);
      const first = ev.first_audio_s === null ? "no audio" : `first audio after ${ev.first_audio_s.toFixed(2)} s`;
      t.assistant.querySelector(".meta").textContent =
        `${first}; ${ev.audio_seconds.toFixed(1)} s of speech in ${ev.wall_s.toFixed(2)} s` +
        (state.maxHistory ? `; ${ev.history_turns} of at most ${state.maxHistory} turn(s) in the model's memory` : "");
      if (ev.heard !== undefined && t.user) t.user.querySelector(".meta").textContent = `the model heard: “${ev.heard}”`;
      state.done += 1;
      state.busy = false;
      updateStats();
      setStatus("ready");
      break;
    }
    case "settings":
      applySettings(ev.settings);
      $("settings").dataset.confirmed = JSON.stringify(ev.settings);  // what the server now decodes with
      break;
    case "reset":
      stopPlayback();
      $("conversation").textContent = "";
      state.turns = {};
      state.busy = false;
      setStatus("ready — new conversation");
      break;
    case "error":
      bubble("error", ev.message);
      if (ev.message.startsWith("settings:")) applySettings(state.settings);
      if (ev.code !== 409) state.busy = false;
      setStatus("ready");
      break;
  }
}

// ---- settings sliders (built from GET /v1/model) ----

async function loadModel() {
  const info = await (await fetch("/v1/model")).json();
  $("model").textContent =
    `${(info.parameters / 1e6).toFixed(1)} M parameters on ${info.device}, context ${info.context} tokens`;
  state.knobs = info.settings;
  state.defaults = Object.fromEntries(info.settings.map((k) => [k.name, k.value]));
  const box = $("settings");
  box.textContent = "";
  for (const k of info.settings) {
    const div = document.createElement("div");
    div.className = "knob";
    div.title = k.help;
    const label = document.createElement("label");
    const name = document.createElement("span");
    name.textContent = k.name.replace(/_/g, " ");
    const value = document.createElement("output");
    label.append(name, value);
    let input, read;
    if (k.choices) {  // a menu of strings
      input = document.createElement("select");
      input.id = "knob-" + k.name;
      for (const choice of k.choices) input.append(new Option(choice, choice));
      read = () => input.value;
    } else {
      input = document.createElement("input");
      Object.assign(input, {type: "range", min: k.minimum, max: k.maximum, step: k.step, id: "knob-" + k.name});
      read = () => Number(input.value);
    }
    const show = () => {
      value.textContent = k.off !== null && read() === k.off ? "off" : input.value;
    };
    input.addEventListener("input", show);
    input.addEventListener("change", () => send(JSON.stringify({type: "settings", settings: {[k.name]: read()}})));
    k.input = input;
    k.show = show;
    div.append(label, input);
    box.append(div);
  }
  applySettings(state.settings);
}

function applySettings(settings) {
  state.settings = settings;
  for (const k of state.knobs) {
    if (!(k.name in settings)) continue;
    const v = settings[k.name];
    k.input.value = v === null ? (k.off ?? k.minimum) : v;
    k.show();
  }
}

// ---- recording: WebAudio capture -> trim silence -> 16 kHz mono 16-bit WAV ----

async function startRecording() {
  const ctx = audioContext();
  await ctx.resume();
  if (!state.worklet) {
    await ctx.audioWorklet.addModule("/static/capture-worklet.js");
    state.worklet = true;
  }
  const stream = await navigator.mediaDevices.getUserMedia(
    {audio: {channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
  const source = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, "capture");
  const rec = {stream, source, node, blocks: [], loud: [], rate: ctx.sampleRate, samples: 0, quiet: 0, voiced: false};
  node.port.onmessage = (e) => onSamples(rec, e.data);
  source.connect(node);
  node.connect(ctx.destination);  // keeps the node pulled by the graph; it outputs silence
  state.recording = rec;
  $("record").textContent = "■ Stop";
  $("record").classList.add("recording");
  setStatus("listening…");
}

function onSamples(rec, block) {
  if (state.recording !== rec) return;
  let sum = 0;
  for (const x of block) sum += x * x;
  const rms = Math.sqrt(sum / block.length);
  rec.blocks.push(block);
  rec.loud.push(rms > VOICE_RMS);
  rec.samples += block.length;
  $("level").firstElementChild.style.width = `${Math.min(100, rms * 400)}%`;
  if (rms > VOICE_RMS) { rec.voiced = true; rec.quiet = 0; } else if (rec.voiced) { rec.quiet += block.length; }
  const tooLong = rec.samples >= (state.maxSeconds - 0.5) * rec.rate;
  if (tooLong || ($("autostop").checked && rec.voiced && rec.quiet >= SILENCE_TO_STOP * rec.rate)) stopRecording();
}

async function stopRecording() {
  const rec = state.recording;
  if (!rec) return;
  state.recording = null;
  rec.source.disconnect();
  rec.node.disconnect();
  for (const track of rec.stream.getTracks()) track.stop();
  $("record").textContent = "● Record";
  $("record").classList.remove("recording");
  $("level").firstElementChild.style.width = "0";
  const first = rec.loud.indexOf(true);
  if (first < 0) { bubble("error", "heard nothing: is the microphone on?"); setStatus("ready"); return; }
  const last = rec.loud.lastIndexOf(true);
  const blockLen = rec.blocks[0].length;
  const pad = (seconds) => Math.ceil((seconds * rec.rate) / blockLen);
  const kept = rec.blocks.slice(Math.max(0, first - pad(0.15)), last + 1 + pad(0.3));
  const wave = new Float32Array(kept.reduce((n, b) => n + b.length, 0));
  let offset = 0;
  for (const b of kept) { wave.set(b, offset); offset += b.length; }
  const resampled = await resample(wave, rec.rate, TARGET_RATE);
  if (send(wavFile(resampled, TARGET_RATE))) { state.busy = true; setStatus("sent — waiting for the answer…"); }
}

async function resample(wave, from, to) {
  if (from === to) return wave;
  const offline = new OfflineAudioContext(1, Math.ceil((wave.length * to) / from), to);
  const buffer = offline.createBuffer(1, wave.length, from);
  buffer.copyToChannel(wave, 0);
  const source = offline.createBufferSource();
  source.buffer = buffer;
  source.connect(offline.destination);
  source.start();
  return (await offline.startRendering()).getChannelData(0);
}

function wavFile(wave, rate) {
  const view = new DataView(new ArrayBuffer(44 + wave.length * 2));
  const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + wave.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, wave.length * 2, true);
  for (let i = 0; i < wave.length; i++) {
    const x = Math.max(-1, Math.min(1, wave[i]));
    view.setInt16(44 + i * 2, x < 0 ? x * 0x8000 : x * 0x7fff, true);
  }
  return view.buffer;
}

// ---- wiring ----

$("record").addEventListener("click", () => {
  if (state.recording) { stopRecording(); return; }
  if (state.busy) { bubble("error", "wait for the answer to finish (or reset)"); return; }
  startRecording().catch((err) => { bubble("error", `microphone: ${err.message || err}`); setStatus("ready"); });
});

$("ask").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("question").value.trim();
  if (!text) return;
  audioContext();  // a click is the gesture that lets the page play sound
  if (send(JSON.stringify({type: "text", text}))) { $("question").value = ""; state.busy = true; }
});

$("reset").addEventListener("click", () => send(JSON.stringify({type: "reset"})));
$("defaults").addEventListener("click", () => send(JSON.stringify({type: "settings", settings: state.defaults})));

loadModel().catch((err) => bubble("error", `could not read /v1/model: ${err}`)).finally(connect);
