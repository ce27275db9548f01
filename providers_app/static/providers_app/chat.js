// The chatbot page: keeps the conversation in this tab (sessionStorage), posts it
// to /chat/send with the CSRF token, and reads the NDJSON answer as it streams:
// {"type":"meta"} (who answers), {"type":"delta"} (text), {"type":"tool_call"}
// (a tool call piece, shown as "→ tool call: name(arguments)"), then "done" or "error".
(function () {
  "use strict";

  const STORE = "fallback-chat";
  const root = document.getElementById("chat");
  if (!root) return;
  const log = document.getElementById("log");
  const empty = document.getElementById("empty");
  const form = document.getElementById("composer");
  const prompt = document.getElementById("prompt");
  const send = document.getElementById("send");
  const reset = document.getElementById("reset");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  // [{role, content, meta}] where meta describes who answered an assistant turn.
  let turns = load();
  turns.forEach((turn) => render(turn.role, turn.content, turn.meta));

  function load() {
    try {
      return JSON.parse(sessionStorage.getItem(STORE)) || [];
    } catch (error) {
      return [];
    }
  }

  function save() {
    sessionStorage.setItem(STORE, JSON.stringify(turns));
  }

  function render(role, text, meta) {
    empty.hidden = true;
    const bubble = document.createElement("article");
    bubble.className = "msg " + role;
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    bubble.appendChild(body);
    const footer = document.createElement("footer");
    footer.className = "meta";
    bubble.appendChild(footer);
    if (meta) describe(footer, meta);
    log.appendChild(bubble);
    bubble.scrollIntoView({ block: "end" });
    return { bubble, body, footer };
  }

  // "answered by secondary (model) · 2 attempts · failed over from primary (server_error)"
  function describe(footer, meta) {
    footer.replaceChildren();
    const who = document.createElement("span");
    who.className = "provider";
    who.textContent = meta.provider;
    footer.append("answered by ", who);
    if (meta.model) footer.append(" (" + meta.model + ")");
    footer.append(" · " + meta.attempts + (meta.attempts === 1 ? " attempt" : " attempts"));
    const failed = meta.failed || [];
    const skipped = meta.skipped || [];
    const list = (items) => items.map((p) => p.provider + " (" + p.reason + ")").join(", ");
    const badge = document.createElement("span");
    if (failed.length || skipped.length) {
      badge.className = "badge failover";
      badge.textContent = "failover";
      footer.append(" · ", badge);
      if (failed.length) footer.append(" from " + list(failed));
      if (skipped.length) footer.append((failed.length ? "; " : " ") + "skipped " + list(skipped));
    } else {
      badge.className = "badge ok";
      badge.textContent = "no failover";
      footer.append(" · ", badge);
    }
  }

  function fail(view, message) {
    view.bubble.classList.add("error");
    const note = document.createElement("p");
    note.className = "alert";
    note.textContent = message;
    view.bubble.appendChild(note);
  }

  function describeCalls(calls) {
    return calls
      .filter(Boolean)
      .map((call) => "\n\u2192 tool call: " + call.name + "(" + call.args + ")")
      .join("");
  }

  async function ask(text) {
    turns.push({ role: "user", content: text });
    render("user", text);
    const view = render("assistant", "");
    view.bubble.classList.add("pending");
    let meta = null;
    let answer = "";
    const calls = [];
    let finished = false;
    try {
      const response = await fetch(root.dataset.sendUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ messages: turns.map((t) => ({ role: t.role, content: t.content })) }),
      });
      if (!response.ok) {
        let message = "The request failed (HTTP " + response.status + ").";
        try {
          message = (await response.json()).error.message || message;
        } catch (error) {
          if (response.status === 403) message = "Your session expired; reload the page.";
        }
        throw new Error(message);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        const lines = buffered.split("\n");
        buffered = lines.pop();
        for (const line of lines) {
          if (!line.trim()) continue;
          const event = JSON.parse(line);
          if (event.type === "meta") {
            meta = event;
            describe(view.footer, meta);
          } else if (event.type === "delta") {
            answer += event.text;
            view.body.textContent = answer + describeCalls(calls);
            view.bubble.scrollIntoView({ block: "end" });
          } else if (event.type === "tool_call") {
            // The first piece of a call has its id and name; later ones add arguments.
            const call = (calls[event.index] = calls[event.index] || { name: "", args: "" });
            if (event.id) call.name = event.function.name;
            call.args += event.function.arguments || "";
            view.body.textContent = answer + describeCalls(calls);
          } else if (event.type === "done") {
            finished = true;
          } else if (event.type === "error") {
            throw new Error(event.message + " The partial answer above is not kept.");
          }
        }
      }
      if (!finished) throw new Error("The connection closed before the answer was complete.");
      turns.push({ role: "assistant", content: answer, meta: meta });
      save();
    } catch (error) {
      // Keep the conversation consistent: the failed turn is not sent again.
      turns.pop();
      save();
      fail(view, error.message);
      if (!answer) prompt.value = text;
    } finally {
      view.bubble.classList.remove("pending");
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || send.disabled) return;
    prompt.value = "";
    send.disabled = true;
    try {
      await ask(text);
    } finally {
      send.disabled = false;
      prompt.focus();
    }
  });

  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  reset.addEventListener("click", () => {
    turns = [];
    save();
    log.querySelectorAll(".msg").forEach((node) => node.remove());
    empty.hidden = false;
    prompt.focus();
  });
})();
