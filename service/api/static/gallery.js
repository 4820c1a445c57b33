// ganserve gallery: plain JavaScript against the service's own API, no build step, no library.
//   GET /models                        models, their classes and limits
//   POST /samples?n&seed&label&model    the grid (format=json: one base64 PNG and seed per image)
//   POST /samples?n=1&seed=<its seed>&label=<its label>   one image again
//   POST /interpolate?from_seed&to_seed&steps&label&model  a strip between two images
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  controls: $("controls"), model: $("model"), label: $("label"), labelField: $("label-field"),
  n: $("n"), seed: $("seed"), generate: $("generate"), newSeeds: $("new-seeds"),
  apiKey: $("api-key"), status: $("status"), images: $("images"),
  interpolation: $("interpolation"), steps: $("steps"), interpolate: $("interpolate"),
  picked: $("picked"), strip: $("strip"),
};
const state = { models: new Map(), picks: [] };

// Seeds are 63-bit integers; JSON.parse would round them to the nearest double, so they are
// read as strings (a base64 PNG never contains a quote, so this touches nothing else).
function parseKeepingSeeds(text) {
  return JSON.parse(text.replace(/"(seed|from_seed|to_seed)":(\d+)/g, '"$1":"$2"'));
}

function say(message, isError = false) {
  ui.status.textContent = message;
  ui.status.classList.toggle("error", isError);
}

function headers() {
  const key = ui.apiKey.value.trim();
  return key ? { "X-API-Key": key } : {};
}

// POST path?query and return the parsed JSON answer; an error answer throws its message.
async function post(path, query) {
  const response = await fetch(`${path}?${new URLSearchParams(query)}`, {
    method: "POST", headers: { Accept: "application/json", ...headers() },
  });
  const text = await response.text();
  let body = null;
  try { body = parseKeepingSeeds(text); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok) {
    const error = body && body.error;
    const field = error && error.field ? ` (${error.field})` : "";
    throw new Error(error ? `${error.message}${field}` : `HTTP ${response.status}`);
  }
  return body;
}

function randomSeed() {  // 0 .. 2**63 - 1, as a decimal string
  const [high, low] = crypto.getRandomValues(new Uint32Array(2));
  return ((BigInt(high & 0x7fffffff) << 32n) | BigInt(low)).toString();
}

function currentModel() { return state.models.get(ui.model.value); }

function className(model, label) {
  if (label === null || label === undefined) return null;
  const names = model.class_names;
  return names ? names[label] : `class ${label}`;
}

// ---- models and classes -------------------------------------------------------------------

function showClasses() {
  const model = currentModel();
  ui.label.replaceChildren(new Option("any (random)", ""));
  const conditional = Boolean(model && model.conditional);
  ui.labelField.hidden = !conditional;
  ui.label.disabled = !conditional;
  if (conditional) {
    for (let i = 0; i < model.num_classes; i += 1) {
      ui.label.add(new Option(`${i} ${className(model, i)}`, String(i)));
    }
  }
  if (model) {
    const most = Math.min(64, model.limits.max_samples);
    ui.n.max = String(most);
    ui.steps.max = String(most);
  }
}

async function loadModels() {
  for (let attempt = 0; attempt < 120; attempt += 1) {
    const response = await fetch("/models", { headers: headers() });
    const body = response.ok ? await response.json() : null;
    if (body && body.models.length) {
      for (const model of body.models) {
        state.models.set(model.name, model);
        ui.model.add(new Option(model.default ? `${model.name} (default)` : model.name, model.name));
      }
      ui.model.value = body.default;
      showClasses();
      return true;
    }
    say(response.status === 401 ? "This service needs an API key (above)." : "Models are loading…",
        response.status === 401);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return false;
}

// ---- the grid -----------------------------------------------------------------------------

function sampleQuery(model, n, seed, label) {
  const query = { n: String(n), model: model.name, format: "json" };
  if (seed !== "") query.seed = seed;
  if (label !== "" && label !== null && label !== undefined) query.label = String(label);
  return query;
}

function curlFor(model, image) {
  const query = sampleQuery(model, 1, image.seed, image.label);
  query.format = "png";
  const key = ui.apiKey.value.trim() ? ` -H "X-API-Key: $GAN_API_KEY"` : "";
  return `curl -X POST '${location.origin}/samples?${new URLSearchParams(query)}'${key} -o seed-${image.seed}.png`;
}

function showImage(tile, model, image) {
  const name = className(model, image.label);
  const img = tile.querySelector("img");
  img.src = `data:image/png;base64,${image.png}`;
  img.alt = `${name ? `${name}, ` : ""}seed ${image.seed}`;
  tile.dataset.seed = image.seed;
  tile.dataset.label = image.label === null ? "" : String(image.label);
  tile.querySelector(".seed").textContent = image.seed;
  tile.querySelector(".class").textContent = name ? ` · ${name}` : "";
}

function makeTile(model, image) {
  const tile = document.createElement("li");
  tile.className = "tile";
  tile.innerHTML = `<img alt="" width="28" height="28">
    <p class="caption">seed <code class="seed"></code><span class="class"></span></p>
    <div class="actions">
      <button type="button" class="regenerate">Regenerate</button>
      <button type="button" class="copy">Copy curl</button>
      <label><input type="checkbox" class="pick"> Pick</label>
    </div>`;
  tile.dataset.regenerated = "0";
  showImage(tile, model, image);
  tile.querySelector(".regenerate").addEventListener("click", () => regenerate(tile, model));
  tile.querySelector(".copy").addEventListener("click", () => copyCurl(tile, model));
  tile.querySelector(".pick").addEventListener("change", (event) => pick(tile, event.target.checked));
  return tile;
}

async function generate() {
  const model = currentModel();
  if (!model) return;
  if (!ui.controls.reportValidity()) return;
  ui.generate.disabled = true;
  say("Generating…");
  try {
    const body = await post("/samples", sampleQuery(model, ui.n.value, ui.seed.value.trim(), ui.label.value));
    ui.seed.value = body.seed;  // a drawn seed becomes visible and reusable
    ui.images.replaceChildren(...body.images.map((image) => makeTile(model, image)));
    state.picks = [];
    showPicks();
    say(`${body.images.length} images of ${body.model}, request seed ${body.seed}.`);
  } catch (error) {
    say(error.message, true);
  } finally {
    ui.generate.disabled = false;
  }
}

async function regenerate(tile, model) {
  const seed = tile.dataset.seed;
  try {
    const body = await post("/samples", sampleQuery(model, 1, seed, tile.dataset.label));
    showImage(tile, model, body.images[0]);
    tile.dataset.regenerated = String(Number(tile.dataset.regenerated) + 1);
    say(`Regenerated seed ${seed} alone: the same image.`);
  } catch (error) {
    say(error.message, true);
  }
}

async function copyCurl(tile, model) {
  const command = curlFor(model, { seed: tile.dataset.seed, label: tile.dataset.label });
  try {
    await navigator.clipboard.writeText(command);
    say(`Copied: ${command}`);
  } catch (_) {  // no clipboard (plain http on another host, or not allowed): show it instead
    say(`Copy this: ${command}`);
  }
}

// ---- interpolation ------------------------------------------------------------------------

function showPicks() {
  for (const tile of ui.images.children) {
    const picked = state.picks.includes(tile);
    tile.classList.toggle("picked", picked);
    tile.querySelector(".pick").checked = picked;
  }
  ui.interpolate.disabled = state.picks.length !== 2;
  ui.picked.textContent = state.picks.length
    ? `picked: ${state.picks.map((tile) => `seed ${tile.dataset.seed}`).join(" → ")}`
    : "no image picked";
}

function pick(tile, picked) {
  state.picks = state.picks.filter((other) => other !== tile);
  if (picked) state.picks.push(tile);
  if (state.picks.length > 2) state.picks.shift();  // the two most recent picks
  showPicks();
}

async function interpolate() {
  const model = currentModel();
  if (state.picks.length !== 2 || !ui.interpolation.reportValidity()) return;
  const [from, to] = state.picks;
  const query = {
    from_seed: from.dataset.seed, to_seed: to.dataset.seed, steps: ui.steps.value,
    model: model.name, format: "json",
  };
  if (from.dataset.label !== "") query.label = from.dataset.label;
  ui.interpolate.disabled = true;
  say("Interpolating…");
  try {
    const body = await post("/interpolate", query);
    ui.strip.replaceChildren(...body.images.map((frame) => {
      const item = document.createElement("li");
      const img = document.createElement("img");
      img.src = `data:image/png;base64,${frame.png}`;
      img.alt = `t = ${frame.t.toFixed(2)}`;
      img.width = 28;
      img.height = 28;
      item.append(img, `t ${frame.t.toFixed(2)}`);
      return item;
    }));
    say(`${body.images.length} frames from seed ${body.from_seed} to seed ${body.to_seed}.`);
  } catch (error) {
    say(error.message, true);
  } finally {
    ui.interpolate.disabled = state.picks.length !== 2;
  }
}

// ---- wiring -------------------------------------------------------------------------------

ui.controls.addEventListener("submit", (event) => { event.preventDefault(); generate(); });
ui.newSeeds.addEventListener("click", () => { ui.seed.value = randomSeed(); generate(); });
ui.model.addEventListener("change", () => { showClasses(); generate(); });
ui.interpolation.addEventListener("submit", (event) => { event.preventDefault(); interpolate(); });

(async () => {
  try {
    if (await loadModels()) {
      ui.seed.value = randomSeed();
      await generate();
    }
  } catch (error) {
    say(`Cannot reach the service: ${error.message}`, true);
  }
})();
