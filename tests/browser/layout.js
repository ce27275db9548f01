// Layout checks run inside the page (see layout.py): returns a list of problems.
() => {
  const SELECTOR = "h1, h2, h3, a, button, input:not([type=hidden]), select, textarea, label, "
    + "th, .badge, .provider, td > span, p.help, .object-tools li";
  const problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1) {
    problems.push(
      `page overflows sideways: ${root.scrollWidth}px content in ${root.clientWidth}px`,
    );
  }
  // Shown to a sighted user: rendered, not in a closed <details>, not clipped to
  // nothing (the screen-reader-only headers of admin tables).
  const clippedAway = (el) => {
    for (let node = el; node && node !== document.body; node = node.parentElement) {
      const style = getComputedStyle(node);
      const box = node.getBoundingClientRect();
      if (style.clip.startsWith("rect(0") || (box.width <= 1 && box.height <= 1)) return true;
    }
    return false;
  };
  const visible = (el) => {
    if (!el.checkVisibility({ visibilityProperty: true, contentVisibilityAuto: true })) return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && !clippedAway(el);
  };
  // Controls occupy their box; text occupies the extent of its text, not the full
  // width of a block heading beside which a toolbar may legitimately float.
  const CONTROLS = ["BUTTON", "INPUT", "SELECT", "TEXTAREA"];
  const boxOf = (el) => {
    if (CONTROLS.includes(el.tagName)) return el.getBoundingClientRect();
    const range = document.createRange();
    range.selectNodeContents(el);
    const box = range.getBoundingClientRect();
    return box.width > 0 && box.height > 0 ? box : el.getBoundingClientRect();
  };
  const pinned = (el) => {
    for (let node = el; node && node !== document.body; node = node.parentElement) {
      const position = getComputedStyle(node).position;
      if (position === "sticky" || position === "fixed") return true;
    }
    return false;
  };
  const name = (el) => {
    const text = (el.innerText || el.value || el.getAttribute("aria-label") || "").trim();
    return `<${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}> "${text.slice(0, 30)}"`;
  };
  for (const el of document.querySelectorAll("body *")) {
    if (["TEXTAREA", "INPUT", "SELECT", "PRE", "svg"].includes(el.tagName) || !visible(el)) continue;
    const style = getComputedStyle(el);
    const clips = ["auto", "scroll", "hidden", "clip"].includes(style.overflowX);
    if (clips && el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 2 && el.clientHeight > 2) {
      problems.push(`${name(el)} cuts its content: ${el.scrollWidth}px in ${el.clientWidth}px`);
    }
  }
  // Inside a chart's <svg>, marks of events close in time may touch on purpose
  // (the dashboard's tests check chart text separately).
  const items = [...document.querySelectorAll(SELECTOR)].filter(
    (el) => visible(el) && !pinned(el) && !el.closest("svg"),
  );
  const boxes = items.map(boxOf);
  for (let i = 0; i < items.length; i++) {
    for (let j = i + 1; j < items.length; j++) {
      const a = items[i], b = items[j];
      if (a.contains(b) || b.contains(a)) continue;
      const p = boxes[i], q = boxes[j];
      const w = Math.min(p.right, q.right) - Math.max(p.left, q.left);
      const h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
      if (w > 1 && h > 1) problems.push(`${name(a)} overlaps ${name(b)} (${w.toFixed(0)}x${h.toFixed(0)}px)`);
    }
  }
  return problems;
}
