// The report's one script: reads the numbers embedded once as JSON (#report-data) and draws,
// per video, the <video>, an SVG timeline (score, threshold, detected segments, ground truth,
// modality weights, a cursor that follows playback; click to seek) and the segment list.
// Cards are drawn only when they come near the screen (IntersectionObserver), so a page of
// 1,000 videos opens at once. Names are only ever set as text, never parsed as HTML.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const SF = data.snippet_frames;
  const W = 1000, HS = 100, GAP = 10, HW = 40, H = HS + GAP + HW;
  const SVG = "http://www.w3.org/2000/svg";
  const timing = { shell_ms: null, first_render_ms: null, rendered: 0 };
  window.reportTiming = timing;

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function sv(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function fmt(x, digits) {
    if (x === null || x === undefined) return "n/a";
    return typeof x === "number" ? x.toFixed(digits) : String(x);
  }
  function timeText(v, frame) {
    return v.fps ? (frame / v.fps).toFixed(2) + " s" : "frame " + frame;
  }

  // ---------------------------------------------------------------- header and table
  document.getElementById("title").textContent = data.title;
  const notes = document.getElementById("notes");
  for (const n of data.notes) notes.appendChild(el("li", {}, n));

  const table = document.getElementById("videos");
  const head = el("tr");
  const cols = [{ key: "name", label: "video", digits: 0 }].concat(data.columns);
  let sortKey = data.sort.key, sortDesc = data.sort.desc;
  for (const c of cols) {
    const th = el("th");
    const b = el("button", { type: "button", "data-key": c.key }, c.label);
    b.addEventListener("click", () => {
      sortDesc = sortKey === c.key ? !sortDesc : c.key !== "name";
      sortKey = c.key;
      sortRows();
    });
    th.appendChild(b);
    head.appendChild(th);
  }
  const thead = el("thead");
  thead.appendChild(head);
  table.appendChild(thead);
  const tbody = el("tbody");
  table.appendChild(tbody);
  const rows = data.videos.map((v, i) => {
    const tr = el("tr", { "data-i": String(i) });
    const td = el("td");
    const a = el("a", { href: "#v" + i }, v.name);
    td.appendChild(a);
    tr.appendChild(td);
    for (const c of data.columns) tr.appendChild(el("td", { class: "num" }, fmt(v.stats[c.key], c.digits)));
    return tr;
  });
  function value(i, key) {
    return key === "name" ? data.videos[i].name : data.videos[i].stats[key];
  }
  function sortRows() {
    const order = rows.map((_, i) => i);
    order.sort((a, b) => {
      const x = value(a, sortKey), y = value(b, sortKey);
      if (x === null || x === undefined) return y === null || y === undefined ? a - b : 1;
      if (y === null || y === undefined) return -1; // n/a last in either direction
      const c = x < y ? -1 : x > y ? 1 : a - b;
      return sortDesc ? -c : c;
    });
    const frag = document.createDocumentFragment();
    for (const i of order) frag.appendChild(rows[i]);
    tbody.appendChild(frag);
    for (const b of head.querySelectorAll("button")) {
      b.className = b.dataset.key === sortKey ? (sortDesc ? "desc" : "asc") : "";
    }
  }
  sortRows();

  // ---------------------------------------------------------------- cards
  const cardsBox = document.getElementById("cards");
  const frag = document.createDocumentFragment();
  const shells = data.videos.map((v, i) => {
    const sec = el("section", { class: "card", id: "v" + i, "data-i": String(i) });
    sec.appendChild(el("h2", {}, v.name));
    if (v.note) sec.appendChild(el("p", { class: "note" }, "Video: " + v.note));
    const body = el("div", { class: "body pending" });
    sec.appendChild(body);
    frag.appendChild(sec);
    return sec;
  });
  cardsBox.appendChild(frag);

  function steps(values, frames, y) {
    // one horizontal step per snippet: the score of a frame is its snippet's
    const pts = [];
    for (let k = 0; k < values.length; k++) {
      const a = (W * Math.min(frames, k * SF)) / frames;
      const b = (W * Math.min(frames, (k + 1) * SF)) / frames;
      const yy = y(values[k]).toFixed(2);
      pts.push(a.toFixed(2) + "," + yy, b.toFixed(2) + "," + yy);
    }
    return pts.join(" ");
  }
  function band(frames, a, b, y0, h, cls) {
    const x = (W * a) / frames;
    return sv("rect", { x: x, y: y0, width: Math.max(0.5, (W * (b - a)) / frames), height: h, class: cls });
  }

  function render(i) {
    const v = data.videos[i];
    const sec = shells[i];
    const body = sec.querySelector(".body");
    body.classList.remove("pending");
    let video = null;
    if (v.video) {
      video = el("video", { controls: "", muted: "", playsinline: "", preload: data.preload });
      video.muted = true;
      video.src = v.video;
      body.appendChild(video);
    }
    const svg = sv("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", class: "timeline" });
    svg.appendChild(sv("rect", { x: 0, y: 0, width: W, height: HS, class: "panel" }));
    svg.appendChild(sv("rect", { x: 0, y: HS + GAP, width: W, height: HW, class: "panel" }));
    for (const s of v.truth) svg.appendChild(band(v.frames, s[0], s[1], 0, HS, "truth"));
    for (const s of v.segments) svg.appendChild(band(v.frames, s.start_frame, s.end_frame, 0, HS, "segment"));
    const ys = (x) => 3 + (HS - 6) * (1 - x); // 3 units of margin: 0 and 1 stay visible
    const yw = (x) => HS + GAP + 3 + (HW - 6) * (1 - x);
    svg.appendChild(sv("line", { x1: 0, x2: W, y1: ys(data.threshold), y2: ys(data.threshold), class: "threshold" }));
    svg.appendChild(sv("polyline", { points: steps(v.w_image, v.frames, yw), class: "w-image" }));
    svg.appendChild(sv("polyline", { points: steps(v.w_event, v.frames, yw), class: "w-event" }));
    svg.appendChild(sv("polyline", { points: steps(v.scores, v.frames, ys), class: "score" }));
    const cursor = sv("line", { x1: 0, x2: 0, y1: 0, y2: H, class: "cursor" });
    svg.appendChild(cursor);
    body.appendChild(svg);

    const axis = el("div", { class: "axis" });
    axis.appendChild(el("span", {}, timeText(v, 0)));
    const legend = el("span", { class: "legend" });
    const keys = [["k-score", "anomaly score"], ["k-threshold", "threshold " + data.threshold],
      ["k-image", "image weight"], ["k-event", "event weight"]];
    if (v.segments.length) keys.push(["k-segment", "detected"]);
    if (v.truth.length) keys.push(["k-truth", "ground truth"]);
    for (const [cls, text] of keys) legend.appendChild(el("span", { class: "key " + cls }, text));
    axis.appendChild(legend);
    axis.appendChild(el("span", {}, timeText(v, v.frames)));
    body.appendChild(axis);
    const readout = el("div", { class: "readout" });
    body.appendChild(readout);

    function show(frame) {
      frame = Math.max(0, Math.min(v.frames - 1, frame));
      const k = Math.floor(frame / SF);
      const x = ((W * frame) / v.frames).toFixed(2);
      cursor.setAttribute("x1", x);
      cursor.setAttribute("x2", x);
      readout.dataset.frame = String(frame);
      readout.dataset.score = String(v.scores[k]);
      readout.textContent = timeText(v, frame) + " · frame " + frame + " · score " +
        v.scores[k].toFixed(3) + " · image " + v.w_image[k].toFixed(2) + " · event " + v.w_event[k].toFixed(2);
    }
    function frameAt(t) {
      return Math.floor(t * v.fps + 1e-6);
    }
    function seek(frame) {
      show(frame);
      if (!video || !v.fps) return;
      const t = frame / v.fps;
      if (video.readyState === 0) {
        video.preload = "auto";
        video.addEventListener("loadedmetadata", () => { video.currentTime = t; }, { once: true });
        video.load();
      } else {
        video.currentTime = t;
      }
    }
    svg.addEventListener("click", (e) => {
      const r = svg.getBoundingClientRect();
      seek(Math.floor((v.frames * (e.clientX - r.left)) / r.width));
    });
    if (video) {
      const follow = () => show(frameAt(video.currentTime));
      video.addEventListener("timeupdate", follow);
      video.addEventListener("seeked", follow);
      video.addEventListener("play", function tick() {
        follow();
        if (!video.paused && !video.ended) requestAnimationFrame(tick);
      });
    }
    show(0);

    const list = el("ol", { class: "segments" });
    if (!v.segments.length) {
      body.appendChild(el("p", { class: "none" }, "No segment scores at least " + data.threshold + "."));
    }
    for (const s of v.segments) {
      const li = el("li");
      const b = el("button", { type: "button", "data-start-frame": String(s.start_frame), "data-end-frame": String(s.end_frame) },
        timeText(v, s.start_frame) + " – " + timeText(v, s.end_frame) + " (frames " + s.start_frame + "–" +
        s.end_frame + "), peak " + s.peak_score.toFixed(3));
      b.addEventListener("click", () => seek(s.start_frame));
      li.appendChild(b);
      list.appendChild(li);
    }
    if (v.segments.length) {
      body.appendChild(el("h3", {}, "Segments scoring at least " + data.threshold + (v.segments_note || "")));
      body.appendChild(list);
    }
    if (v.files.length) {
      const p = el("p", { class: "files" }, "Files: ");
      for (const f of v.files) {
        p.appendChild(el("a", { href: f.href }, f.label));
        p.appendChild(document.createTextNode(" "));
      }
      body.appendChild(p);
    }
    timing.rendered += 1;
  }

  timing.shell_ms = performance.now();
  const observer = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      observer.unobserve(e.target);
      render(Number(e.target.dataset.i));
    }
    if (timing.first_render_ms === null && timing.rendered > 0) timing.first_render_ms = performance.now();
  }, { rootMargin: "400px 0px" });
  for (const s of shells) observer.observe(s);
})();
