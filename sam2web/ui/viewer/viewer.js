// The sam2web viewer/annotator: one canvas for Annotate, Results playback and corrections.
//
// Why in the browser: zoom, pan, drawing and playback must not wait for a Python rerun. Python sends
// frames (URLs of screen-resolution JPEGs, plus the full-resolution frame shown), polygons and prompts
// in full-resolution image pixels; everything drawn goes back as a list of operations with client ids
// (setStateValue "ops"), kept here until Python acknowledges each id, so nothing drawn is lost while
// Python is busy. Streamlit calls this function again with new data on every rerun: the instance (DOM,
// view, pending operations, frame cache) lives in a WeakMap keyed by the mount point.

const INSTANCES = new WeakMap();
const MIN_ZOOM = 1;
const MAX_ZOOM = 32;
const TOOL_NAMES = {
  select: ["Select", "S", "Select an object (click it); drag to pan"],
  box_new: ["Box", "B", "Box: a new object"],
  box_obj: ["Box ●", "Shift+B", "Box for the selected object"],
  pos: ["+ Point", "P", "Positive point for the selected object"],
  neg: ["− Point", "N", "Negative point for the selected object"],
  move: ["Move", "M", "Move a box"],
  delete: ["Delete", "D", "Delete a box or a point"],
  divide: ["Daughters", "V", "Draw the selected object's two daughters' boxes (a division)"],
};
const HELP = `
<b>Mouse</b>: wheel zooms at the cursor (1×–32×); drag with the right or middle button, or hold
<kbd>Space</kbd> and drag, to pan; with Select or Move, dragging empty space pans too.<br>
<b>Tools</b>: <kbd>B</kbd> box (new object), <kbd>Shift</kbd>+<kbd>B</kbd> box for the selected object,
<kbd>P</kbd> positive point, <kbd>N</kbd> negative point, <kbd>S</kbd> select, <kbd>M</kbd> move a box,
<kbd>D</kbd> delete a box or point, <kbd>V</kbd> daughters' boxes (division).<br>
<b>Keys</b>: <kbd>Delete</kbd> the selected object's prompts on this frame, <kbd>Esc</kbd> cancel / select tool,
<kbd>←</kbd>/<kbd>→</kbd> frame, <kbd>Space</kbd> play/pause, <kbd>+</kbd>/<kbd>−</kbd> zoom, <kbd>0</kbd> fit,
<kbd>?</kbd> this help.<br>
Everything you draw is kept in full-resolution image pixels and saved in order, however fast you draw.`;

function newCid() {
  newCid.n = (newCid.n || 0) + 1;
  return `${Date.now().toString(36)}-${newCid.n}-${Math.random().toString(36).slice(2, 8)}`;
}

function hexToRgba(hex, alpha) {
  let c = String(hex || "#ffff00").replace("#", "");
  if (c.length === 3) c = c.split("").map((ch) => ch + ch).join("");
  const n = parseInt(c, 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

function makePath(rings) {
  const path = new Path2D();
  for (const ring of rings || []) {
    if (!ring || ring.length < 6) continue;
    path.moveTo(ring[0], ring[1]);
    for (let i = 2; i < ring.length; i += 2) path.lineTo(ring[i], ring[i + 1]);
    path.closePath();
  }
  return path;
}

class Viewer {
  constructor(component) {
    this.host = component.parentElement;
    this.root = this.host.querySelector(".sv-root");
    this.canvas = this.root.querySelector(".sv-canvas");
    this.stage = this.root.querySelector(".sv-stage");
    this.ctx = this.canvas.getContext("2d");
    this.data = {};
    this.frames = [];
    this.cur = 0;
    this.seek = undefined;
    this.view = null; // {s, tx, ty}: screen (CSS px, canvas box) = image px * s + t
    this.imageSize = [0, 0];
    this.pending = [];
    this.hidden = new Set();
    this.hiddenSeeded = false;
    this.selected = null;
    this.tool = "select";
    this.playing = false;
    this.lastAdvance = 0;
    this.fps = 15;
    this.drag = null;
    this.space = false;
    this.cache = new Map(); // url -> {img, ready}
    this.paths = new Map(); // frame position -> [{id, path}]
    this.reported = null;
    this.raf = 0;
    this.dirty = true;
    this.listeners = [];
    this.root.querySelector(".sv-help").innerHTML = HELP;
    this.bind();
    this.loop = this.loop.bind(this);
    this.raf = requestAnimationFrame(this.loop);
  }

  on(target, type, fn, opts) {
    target.addEventListener(type, fn, opts);
    this.listeners.push([target, type, fn, opts]);
  }

  destroy() {
    cancelAnimationFrame(this.raf);
    for (const [t, type, fn, opts] of this.listeners) t.removeEventListener(type, fn, opts);
    this.listeners = [];
    if (this.resizeObserver) this.resizeObserver.disconnect();
  }

  // ------------------------------------------------------------------------------ data from Python
  update(component) {
    this.api = component;
    const d = component.data || {};
    this.data = d;
    this.frames = d.frames || [];
    const [w, h] = [d.image?.w || 1, d.image?.h || 1];
    const sizeChanged = w !== this.imageSize[0] || h !== this.imageSize[1];
    this.imageSize = [w, h];
    if (d.height) this.stage.style.height = `${d.height}px`;
    if (d.seek !== this.seek) {
      this.seek = d.seek;
      this.cur = Math.min(Math.max(d.index || 0, 0), Math.max(this.frames.length - 1, 0));
      this.reported = this.cur;
    }
    if (this.cur >= this.frames.length) this.cur = Math.max(this.frames.length - 1, 0);
    if (!this.hiddenSeeded || d.hidden_version !== this.hiddenVersion) {
      this.hidden = new Set(d.hidden || []);
      this.hiddenSeeded = true;
      this.hiddenVersion = d.hidden_version;
    }
    if (d.selected !== undefined) this.selected = d.selected;
    const tools = d.tools || ["select"];
    if (!this.toolsKey || this.toolsKey !== tools.join(",")) {
      this.toolsKey = tools.join(",");
      this.tool = tools.includes(this.tool) && this.toolSet ? this.tool : d.tool || tools[0];
      this.toolSet = true;
      this.renderTools(tools);
    }
    if (d.tool_seek !== undefined && d.tool_seek !== this.toolSeek) {
      this.toolSeek = d.tool_seek;
      if (d.tool && tools.includes(d.tool)) this.tool = d.tool;
    }
    this.colors = new Map((d.objects || []).map((o) => [o.id, o]));
    const acked = new Set(d.acked || []);
    this.pending = this.pending.filter((op) => !acked.has(op.cid));
    this.paths = new Map();
    for (const [pos, items] of Object.entries(d.overlays || {})) {
      this.paths.set(Number(pos), items.map((it) => ({ id: it.id, path: makePath(it.rings), color: it.color })));
    }
    for (const f of this.frames) {
      this.load(f.src);
      if (f.full) this.load(f.full);
    }
    if (sizeChanged || !this.view) this.fit();
    const single = this.frames.length <= 1;
    this.root.querySelector(".sv-range").classList.toggle("sv-hidden", single);
    this.root.querySelector(".sv-play").classList.toggle("sv-hidden", single);
    this.root.querySelector(".sv-fps").classList.toggle("sv-hidden", single);
    const stepping = !single || d.step_via_python;
    this.root.querySelector('[data-act="prev"]').classList.toggle("sv-hidden", !stepping);
    this.root.querySelector('[data-act="next"]').classList.toggle("sv-hidden", !stepping);
    const range = this.root.querySelector(".sv-range");
    range.max = String(Math.max(this.frames.length - 1, 0));
    if (d.fps && !this.fpsSeeded) {
      this.fps = d.fps;
      this.fpsSeeded = true;
      this.root.querySelector(".sv-fps").value = String(d.fps);
    }
    this.root.dataset.pyrun = String(d.pyrun ?? 0);
    this.renderLegend();
    this.dirty = true;
  }

  load(url) {
    if (!url || this.cache.has(url)) return;
    const img = new Image();
    const entry = { img, ready: false };
    this.cache.set(url, entry);
    img.decoding = "async";
    img.onload = () => {
      // A decoded bitmap draws without decoding again (Chromium may drop an <img>'s decoded pixels).
      const done = (bitmap) => {
        entry.bitmap = bitmap;
        entry.ready = true;
        this.dirty = true;
      };
      if (window.createImageBitmap) createImageBitmap(img).then(done, () => done(null));
      else done(null);
    };
    img.src = url;
  }

  // ------------------------------------------------------------------------------------- widgets
  renderTools(tools) {
    const box = this.root.querySelector(".sv-tools");
    box.innerHTML = "";
    for (const t of tools) {
      const [name, key, what] = TOOL_NAMES[t] || [t, "", t];
      const b = document.createElement("button");
      b.type = "button";
      b.className = "sv-btn sv-tool";
      b.dataset.tool = t;
      b.textContent = name;
      b.title = `${what} (${key})`;
      box.appendChild(b);
    }
  }

  renderLegend() {
    const legend = this.root.querySelector(".sv-legend");
    const objs = this.data.objects || [];
    const key = JSON.stringify([objs, [...this.hidden], this.selected]);
    if (key === this.legendKey) return;
    this.legendKey = key;
    legend.innerHTML = "";
    if (!this.data.legend) return;
    for (const o of objs) {
      const lab = document.createElement("label");
      lab.title = o.name;
      if (o.id === this.selected) lab.classList.add("sv-sel");
      const cb = document.createElement("input");
      cb.type = "checkbox";
      cb.checked = !this.hidden.has(o.id);
      cb.dataset.obj = String(o.id);
      const sw = document.createElement("span");
      sw.className = "sv-swatch";
      sw.style.background = o.color;
      const text = document.createElement("span");
      text.textContent = o.name;
      text.dataset.selobj = String(o.id);
      lab.append(cb, sw, text);
      legend.appendChild(lab);
    }
  }

  syncWidgets() {
    for (const b of this.root.querySelectorAll(".sv-tool")) b.classList.toggle("sv-on", b.dataset.tool === this.tool);
    this.root.querySelector(".sv-zoom").textContent = `${this.zoom().toFixed(this.zoom() < 10 ? 1 : 0)}×`;
    const f = this.frames[this.cur];
    const total = this.data.total || this.frames.length || 1;
    const label = f ? `${this.data.axis || "Frame"} ${f.index + 1} of ${total}` : "";
    this.root.querySelector(".sv-label").textContent = label;
    const range = this.root.querySelector(".sv-range");
    if (document.activeElement !== range && this.host.activeElement !== range) range.value = String(this.cur);
    this.root.querySelector(".sv-play").textContent = this.playing ? "❚❚" : "▶";
    const n = this.pending.length;
    this.root.querySelector(".sv-status").textContent = n ? `saving ${n}…` : this.data.status || "";
  }

  // ------------------------------------------------------------------------------------ the view
  size() {
    return [this.stage.clientWidth || 1, this.stage.clientHeight || 1];
  }

  fitScale() {
    const [cw, ch] = this.size();
    const [w, h] = this.imageSize;
    return Math.min(cw / w, ch / h);
  }

  zoom() {
    return this.view ? this.view.s / this.fitScale() : 1;
  }

  fit() {
    const [cw, ch] = this.size();
    const [w, h] = this.imageSize;
    const s = this.fitScale();
    this.view = { s, tx: (cw - w * s) / 2, ty: (ch - h * s) / 2 };
    this.dirty = true;
  }

  clampView() {
    const [cw, ch] = this.size();
    const [w, h] = this.imageSize;
    const v = this.view;
    const fs = this.fitScale();
    v.s = Math.min(Math.max(v.s, fs * MIN_ZOOM), fs * MAX_ZOOM);
    const iw = w * v.s;
    const ih = h * v.s;
    v.tx = iw <= cw ? (cw - iw) / 2 : Math.min(0, Math.max(cw - iw, v.tx));
    v.ty = ih <= ch ? (ch - ih) / 2 : Math.min(0, Math.max(ch - ih, v.ty));
  }

  zoomAt(px, py, factor) {
    const v = this.view;
    const ix = (px - v.tx) / v.s;
    const iy = (py - v.ty) / v.s;
    v.s *= factor;
    this.clampView();
    v.tx = px - ix * v.s;
    v.ty = py - iy * v.s;
    this.clampView();
    this.dirty = true;
  }

  toImage(e) {
    const r = this.canvas.getBoundingClientRect();
    const v = this.view;
    return [(e.clientX - r.left - v.tx) / v.s, (e.clientY - r.top - v.ty) / v.s];
  }

  screenXY(e) {
    const r = this.canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  // ------------------------------------------------------------------------- shapes on a frame
  frameOf(pos) {
    const f = this.frames[pos];
    return f ? { frame: f.index, loc: f.loc, pos } : { frame: 0, loc: null, pos };
  }

  // The prompts shown on a frame: Python's saved ones, then the pending operations applied in order.
  shownPrompts(pos) {
    let items = ((this.data.prompts || {})[pos] || []).map((p) => ({ ...p }));
    for (const op of this.pending) {
      if (op.pos !== pos) continue;
      if (op.op === "add") items.push({ ...op, id: op.obj, pending: true });
      else if (op.op === "move") {
        items = items.filter((p) => !(p.kind === "box" && p.id === op.obj));
        items.push({ kind: "box", id: op.obj, box: op.box, pending: true });
      } else if (op.op === "delete") {
        items = items.filter(
          (p) =>
            !(
              p.id === op.obj &&
              (op.what === "all" || (op.what === "box" && p.kind === "box") || (op.what === "point" && p.kind === "point" && p.n === op.n))
            ),
        );
      }
    }
    const mp = this.movePreview;
    if (mp && pos === this.cur) {
      items = items.filter((p) => !(p.kind === "box" && p.id === mp.obj && !p.divide));
      items.push({ kind: "box", id: mp.obj, box: mp.box, pending: true });
    }
    return items;
  }

  push(op) {
    const at = this.frameOf(this.cur);
    const full = { cid: newCid(), ...at, ...op };
    this.pending.push(full);
    this.api.setStateValue("ops", this.pending.map((p) => ({ ...p })));
    this.dirty = true;
  }

  hitPrompt(ix, iy) {
    const tol = 6 / this.view.s;
    const items = this.shownPrompts(this.cur);
    for (const p of items) {
      if (p.kind === "point" && Math.hypot(p.x - ix, p.y - iy) <= tol * 1.5) return p;
    }
    for (const p of items) {
      if (p.kind !== "box") continue;
      const [x0, y0, x1, y1] = p.box;
      if (ix >= x0 - tol && ix <= x1 + tol && iy >= y0 - tol && iy <= y1 + tol) return p;
    }
    return null;
  }

  hitOverlay(ix, iy) {
    const items = this.paths.get(this.cur) || [];
    for (let i = items.length - 1; i >= 0; i--) {
      const it = items[i];
      if (this.hidden.has(it.id)) continue;
      if (this.ctx.isPointInPath(it.path, ix, iy, "evenodd")) return it.id;
    }
    return null;
  }

  select(id) {
    this.selected = id;
    this.api.setTriggerValue("select", id);
    this.dirty = true;
    this.renderLegend();
  }

  setTool(t) {
    if (!(this.data.tools || []).includes(t)) return;
    this.tool = t;
    this.dirty = true;
  }

  // ----------------------------------------------------------------------------------- frames
  goto(pos, report = true) {
    const n = this.frames.length;
    if (!n) return;
    this.cur = ((pos % n) + n) % n;
    this.dirty = true;
    if (report) this.reportFrame();
  }

  step(dir) {
    const next = this.cur + dir;
    const outside = next < 0 || next >= this.frames.length;
    if (this.frames.length <= 1 || (outside && this.data.step_via_python)) {
      // One frame here (Annotate), or the end of the frames sent (a long run): Python moves on.
      if (this.data.step_via_python) this.api.setTriggerValue("step", dir);
      return;
    }
    this.playing = false;
    this.goto(this.cur + dir);
  }

  reportFrame() {
    if (!this.data.report_frame || this.playing || this.reported === this.cur) return;
    this.reported = this.cur;
    this.api.setStateValue("frame", this.cur);
  }

  togglePlay() {
    if (this.frames.length <= 1) return;
    this.playing = !this.playing;
    this.lastAdvance = performance.now();
    if (!this.playing) this.reportFrame();
    this.dirty = true;
  }

  loop(now) {
    this.raf = requestAnimationFrame(this.loop);
    if (this.playing && now - this.lastAdvance >= 1000 / this.fps - 1) {
      const next = (this.cur + 1) % this.frames.length;
      const f = this.frames[next];
      const entry = f && this.cache.get(f.src);
      if (entry && entry.ready) {
        this.cur = next;
        this.lastAdvance = now;
        this.dirty = true;
      }
    }
    if (this.dirty) {
      this.dirty = false;
      this.draw();
    }
  }

  // ------------------------------------------------------------------------------------ drawing
  draw() {
    const [cw, ch] = this.size();
    const dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(cw * dpr) || this.canvas.height !== Math.round(ch * dpr)) {
      this.canvas.width = Math.round(cw * dpr);
      this.canvas.height = Math.round(ch * dpr);
    }
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, cw, ch);
    const v = this.view;
    const [w, h] = this.imageSize;
    const f = this.frames[this.cur];
    let objects = 0;
    let prompts = 0;
    if (f && v) {
      const zoomed = this.zoom() > 1.01;
      const full = f.full && this.cache.get(f.full);
      const small = this.cache.get(f.src);
      const entry = (zoomed || !small?.ready) && full?.ready ? full : small?.ready ? small : full?.ready ? full : null;
      ctx.setTransform(dpr * v.s, 0, 0, dpr * v.s, dpr * v.tx, dpr * v.ty);
      if (entry) {
        const srcPerImage = entry.img.naturalWidth / w;
        ctx.imageSmoothingEnabled = v.s / srcPerImage < 2; // enlarged pixels stay sharp squares
        ctx.drawImage(entry.bitmap || entry.img, 0, 0, w, h);
      }
      const unit = 1 / v.s; // one CSS pixel in image pixels
      for (const it of this.paths.get(this.cur) || []) {
        if (this.hidden.has(it.id)) continue;
        const color = it.color || this.colors.get(it.id)?.color || "#ffff00";
        const sel = it.id === this.selected;
        ctx.fillStyle = hexToRgba(color, sel ? 0.38 : 0.2);
        ctx.fill(it.path, "evenodd");
        ctx.strokeStyle = color;
        ctx.lineWidth = (sel ? 3 : 1.5) * unit;
        ctx.stroke(it.path);
        if (sel) {
          ctx.strokeStyle = "rgba(255,255,255,0.9)";
          ctx.lineWidth = 1 * unit;
          ctx.stroke(it.path);
        }
        objects += 1;
      }
      const shown = this.shownPrompts(this.cur);
      for (const p of shown) {
        if (p.id !== null && p.id !== undefined && this.hidden.has(p.id) && !p.pending) continue;
        prompts += 1;
        const sel = p.id === this.selected && p.id !== null && p.id !== undefined;
        if (p.kind === "box") {
          const [x0, y0, x1, y1] = p.box;
          const color = p.divide ? "#ffffff" : this.colors.get(p.id)?.color || p.color || "#ffff00";
          ctx.setLineDash(p.pending || p.divide ? [6 * unit, 4 * unit] : []);
          ctx.strokeStyle = "rgba(0,0,0,0.6)";
          ctx.lineWidth = (sel ? 4 : 3) * unit;
          ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
          ctx.strokeStyle = color;
          ctx.lineWidth = (sel ? 2.5 : 1.5) * unit;
          ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
          ctx.setLineDash([]);
        } else if (p.kind === "point") {
          ctx.beginPath();
          ctx.arc(p.x, p.y, 5 * unit, 0, 2 * Math.PI);
          ctx.fillStyle = p.label ? "#00e000" : "#ff2020";
          ctx.fill();
          ctx.lineWidth = 1.5 * unit;
          ctx.strokeStyle = "#ffffff";
          ctx.stroke();
        }
      }
      if (this.drag && this.drag.kind === "box") {
        const [x0, y0, x1, y1] = this.dragBox();
        ctx.setLineDash([4 * unit, 3 * unit]);
        ctx.strokeStyle = "#ffff00";
        ctx.lineWidth = 1.5 * unit;
        ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
        ctx.setLineDash([]);
      }
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.imageSmoothingEnabled = true;
    }
    const r = this.root.dataset;
    r.frame = String(f ? f.index : 0);
    r.pos = String(this.cur);
    r.objects = String(objects);
    r.prompts = String(prompts);
    r.zoom = this.zoom().toFixed(3);
    r.pending = String(this.pending.length);
    r.tool = this.tool;
    r.playing = this.playing ? "1" : "0";
    r.selected = this.selected === null || this.selected === undefined ? "" : String(this.selected);
    if (v) {
      r.scale = String(v.s);
      r.tx = String(v.tx);
      r.ty = String(v.ty);
    }
    this.syncWidgets();
  }

  dragBox(d = this.drag) {
    const [w, h] = this.imageSize;
    const cl = (a, n) => Math.min(Math.max(a, 0), n);
    return [
      cl(Math.min(d.x0, d.x1), w),
      cl(Math.min(d.y0, d.y1), h),
      cl(Math.max(d.x0, d.x1), w),
      cl(Math.max(d.y0, d.y1), h),
    ];
  }

  // ------------------------------------------------------------------------------------- input
  bind() {
    const c = this.canvas;
    this.on(this.stage, "wheel", (e) => this.onWheel(e), { passive: false });
    this.on(c, "pointerdown", (e) => this.onDown(e));
    this.on(c, "pointermove", (e) => this.onMove(e));
    this.on(c, "pointerup", (e) => this.onUp(e));
    this.on(c, "pointercancel", () => {
      this.drag = null;
      this.dirty = true;
    });
    this.on(c, "contextmenu", (e) => e.preventDefault());
    this.on(this.root, "keydown", (e) => this.onKey(e));
    this.on(this.root, "keyup", (e) => {
      if (e.key === " ") this.space = false;
    });
    this.on(this.root, "click", (e) => this.onClick(e));
    this.on(this.root, "change", (e) => this.onChange(e));
    this.on(this.root, "input", (e) => {
      if (e.target.classList.contains("sv-range")) {
        this.playing = false;
        this.goto(Number(e.target.value), false);
      }
    });
    if (window.ResizeObserver) {
      this.resizeObserver = new ResizeObserver(() => {
        if (!this.view) return;
        const atFit = Math.abs(this.zoom() - 1) < 1e-3;
        if (atFit) this.fit();
        else this.clampView();
        this.dirty = true;
      });
      this.resizeObserver.observe(this.stage);
    }
  }

  onClick(e) {
    const t = e.target;
    if (t.dataset?.tool) {
      this.setTool(t.dataset.tool);
      return;
    }
    if (t.dataset?.selobj !== undefined && t.dataset?.selobj !== null && t.dataset.selobj !== "") {
      e.preventDefault();
      this.select(Number(t.dataset.selobj));
      return;
    }
    const act = t.dataset?.act;
    if (!act) return;
    const [cw, ch] = this.size();
    if (act === "zoom-in") this.zoomAt(cw / 2, ch / 2, 1.5);
    else if (act === "zoom-out") this.zoomAt(cw / 2, ch / 2, 1 / 1.5);
    else if (act === "fit") this.fit();
    else if (act === "help") this.toggleHelp();
    else if (act === "play") this.togglePlay();
    else if (act === "prev") this.step(-1);
    else if (act === "next") this.step(1);
  }

  onChange(e) {
    const t = e.target;
    if (t.classList.contains("sv-fps")) this.fps = Number(t.value) || 15;
    else if (t.classList.contains("sv-range")) this.goto(Number(t.value));
    else if (t.dataset?.obj !== undefined) {
      const id = Number(t.dataset.obj);
      if (t.checked) this.hidden.delete(id);
      else this.hidden.add(id);
      this.dirty = true;
    }
  }

  toggleHelp(force) {
    const help = this.root.querySelector(".sv-help");
    help.hidden = force === undefined ? !help.hidden : !force;
  }

  onWheel(e) {
    e.preventDefault();
    if (!this.view) return;
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
    const factor = Math.exp(-e.deltaY * unit * 0.002);
    const [px, py] = this.screenXY(e);
    this.zoomAt(px, py, factor);
  }

  onDown(e) {
    this.root.focus({ preventScroll: true });
    if (!this.view) return;
    try {
      this.canvas.setPointerCapture(e.pointerId); // a drag that leaves the canvas still ends here
    } catch (_err) {
      // a pointer the browser does not track (synthetic events): no capture needed
    }
    const [sx, sy] = this.screenXY(e);
    const [ix, iy] = this.toImage(e);
    const panButton = e.button === 1 || e.button === 2 || this.space;
    if (panButton) {
      this.drag = { kind: "pan", sx, sy, tx: this.view.tx, ty: this.view.ty };
      return;
    }
    if (e.button !== 0) return;
    const t = this.tool;
    if (t === "box_new" || t === "box_obj" || t === "divide") {
      this.drag = { kind: "box", x0: ix, y0: iy, x1: ix, y1: iy, sx, sy };
    } else if (t === "pos" || t === "neg") {
      this.drag = { kind: "point", sx, sy, ix, iy };
    } else if (t === "move") {
      const hit = this.hitPrompt(ix, iy);
      if (hit && hit.kind === "box" && !hit.divide) {
        this.drag = { kind: "move", obj: hit.id, box: hit.box.slice(), ix, iy, dx: 0, dy: 0 };
      } else this.drag = { kind: "pan", sx, sy, tx: this.view.tx, ty: this.view.ty, click: true };
    } else if (t === "delete") {
      this.drag = { kind: "delete", sx, sy, ix, iy };
    } else {
      this.drag = { kind: "pan", sx, sy, tx: this.view.tx, ty: this.view.ty, click: true, ix, iy };
    }
    this.dirty = true;
  }

  onMove(e) {
    const d = this.drag;
    if (!d) return;
    const [sx, sy] = this.screenXY(e);
    if (d.kind === "pan") {
      this.view.tx = d.tx + (sx - d.sx);
      this.view.ty = d.ty + (sy - d.sy);
      if (Math.hypot(sx - d.sx, sy - d.sy) > 3) d.click = false;
      this.clampView();
    } else if (d.kind === "box") {
      [d.x1, d.y1] = this.toImage(e);
    } else if (d.kind === "move") {
      const [ix, iy] = this.toImage(e);
      d.dx = ix - d.ix;
      d.dy = iy - d.iy;
      const [x0, y0, x1, y1] = d.box;
      this.movePreview = { obj: d.obj, box: [x0 + d.dx, y0 + d.dy, x1 + d.dx, y1 + d.dy] };
    }
    this.dirty = true;
  }

  onUp(e) {
    const d = this.drag;
    this.drag = null;
    this.movePreview = null;
    this.dirty = true;
    if (!d) return;
    const [w, h] = this.imageSize;
    const inside = (x, y) => x >= 0 && y >= 0 && x <= w && y <= h;
    const r2 = (v) => Math.round(v * 100) / 100;
    if (d.kind === "box") {
      [d.x1, d.y1] = this.toImage(e);
      const box = this.dragBox(d).map(r2);
      const screenBig = Math.abs(e.clientX - (d.sx + this.canvas.getBoundingClientRect().left)) >= 3 ||
        Math.abs(e.clientY - (d.sy + this.canvas.getBoundingClientRect().top)) >= 3;
      if (!screenBig || box[2] - box[0] <= 0 || box[3] - box[1] <= 0) return; // a stray click
      if (this.tool === "divide") this.push({ op: "add", kind: "box", box, tool: "divide", obj: this.selected, divide: true });
      else this.push({ op: "add", kind: "box", box, tool: this.tool, obj: this.selected });
    } else if (d.kind === "point") {
      if (!inside(d.ix, d.iy)) return;
      this.push({ op: "add", kind: "point", x: r2(d.ix), y: r2(d.iy), label: this.tool === "pos" ? 1 : 0, obj: this.selected });
    } else if (d.kind === "move") {
      if (Math.abs(d.dx) < 1e-6 && Math.abs(d.dy) < 1e-6) {
        this.select(d.obj);
        return;
      }
      const [x0, y0, x1, y1] = d.box;
      this.push({ op: "move", obj: d.obj, box: [x0 + d.dx, y0 + d.dy, x1 + d.dx, y1 + d.dy].map(r2) });
    } else if (d.kind === "delete") {
      const hit = this.hitPrompt(d.ix, d.iy);
      if (hit && !hit.pending) this.push({ op: "delete", obj: hit.id, what: hit.kind, n: hit.n ?? null });
    } else if (d.kind === "pan" && d.click && d.ix !== undefined) {
      const hit = this.hitPrompt(d.ix, d.iy);
      const id = hit && !hit.divide ? hit.id : this.hitOverlay(d.ix, d.iy);
      if (id !== null && id !== undefined) this.select(id);
    }
  }

  onKey(e) {
    const tag = (e.target?.tagName || "").toLowerCase();
    if (tag === "input" && e.target.type !== "range" && e.target.type !== "checkbox") return;
    if (tag === "select") return;
    const k = e.key;
    const [cw, ch] = this.size();
    let handled = true;
    if (k === "b" || k === "B") this.setTool(e.shiftKey ? "box_obj" : "box_new");
    else if (k === "p" || k === "P") this.setTool("pos");
    else if (k === "n" || k === "N") this.setTool("neg");
    else if (k === "s" || k === "S") this.setTool("select");
    else if (k === "m" || k === "M") this.setTool("move");
    else if (k === "d" || k === "D") this.setTool("delete");
    else if (k === "v" || k === "V") this.setTool("divide");
    else if (k === "Delete" || k === "Backspace") {
      if (this.selected !== null && this.selected !== undefined && (this.data.tools || []).includes("delete"))
        this.push({ op: "delete", obj: this.selected, what: "all", n: null });
    } else if (k === "Escape") {
      if (this.drag) this.drag = null;
      else if (!this.root.querySelector(".sv-help").hidden) this.toggleHelp(false);
      else this.setTool("select");
    } else if (k === "ArrowLeft") this.step(-1);
    else if (k === "ArrowRight") this.step(1);
    else if (k === " ") {
      if (!e.repeat && this.frames.length > 1 && !this.space) this.togglePlay();
      this.space = this.frames.length <= 1;
    } else if (k === "+" || k === "=") this.zoomAt(cw / 2, ch / 2, 1.5);
    else if (k === "-" || k === "_") this.zoomAt(cw / 2, ch / 2, 1 / 1.5);
    else if (k === "0") this.fit();
    else if (k === "?" || k === "h" || k === "H") this.toggleHelp();
    else handled = false;
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
      this.dirty = true;
    }
  }
}

export default function (component) {
  const host = component.parentElement;
  let inst = INSTANCES.get(host);
  if (!inst) {
    inst = new Viewer(component);
    INSTANCES.set(host, inst);
  }
  inst.update(component);
  // Streamlit may call a superseded call's clean-up while the element stays mounted (a quick
  // rerun): only a mount point that has left the page is really gone.
  return () => {
    setTimeout(() => {
      if (!host.isConnected && INSTANCES.get(host) === inst) {
        inst.destroy();
        INSTANCES.delete(host);
      }
    }, 0);
  };
}
