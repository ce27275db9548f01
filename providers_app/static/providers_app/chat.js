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
    if (meta) describe(footer, meta, true);  // a kept turn is a finished answer
    log.appendChild(bubble);
    reveal(bubble);
    return { bubble, body, footer };
  }

  // Scroll so the bubble's end sits just above the composer. The composer is
  // sticky at the bottom of the window, so scrollIntoView({block: "end"}) would
  // leave the newest lines hidden behind it.
  function reveal(bubble) {
    const hiddenBy = bubble.getBoundingClientRect().bottom - form.getBoundingClientRect().top;
    if (hiddenBy > -8) window.scrollBy(0, hiddenBy + 12);
  }

  // "answered by secondary (model) · 2 attempts · failed over from primary (server_error)"
  // `complete`: the answer has ended; only then can it be said there was no failover.
  function describe(footer, meta, complete) {
    footer.replaceChildren();
    const who = document.createElement("span");
    who.className = "provider";
    who.textContent = meta.provider;
    footer.append("answered by ", who);
    if (meta.model) footer.append(" (" + meta.model + ")");
    footer.append(" · " + meta.attempts + (meta.attempts === 1 ? " attempt" : " attempts"));
    const failed = meta.failed || [];
    const skipped = meta.skipped || [];
    const list = (items) => items.map((p) => p.provider + " (" + plainReason(p.reason) + ")").join(", ");
    const badge = document.createElement("span");
    if (failed.length || skipped.length) {
      badge.className = "badge failover";
      badge.textContent = "switched to " + meta.provider;
      footer.append(" · ", badge);
      if (failed.length) footer.append(" from " + list(failed));
      if (skipped.length) footer.append(" · passed by " + list(skipped));
    } else if (complete) {
      badge.className = "badge ok";
      badge.textContent = "no failover";
      footer.append(" · ", badge);
    }
    if (meta.finishedBy) {
      footer.append(
        " · finished by " + meta.finishedBy + " after " + meta.continuedFrom.join(", ") + " was cut"
      );
    }
  }

  // A failure as a person reads it, and a way out: try again, or sign in again.
  function fail(view, problem, retry) {
    view.bubble.classList.add("error");
    const note = document.createElement("p");
    note.className = "alert";
    note.setAttribute("role", "alert");
    note.textContent = problem.message;
    view.bubble.appendChild(note);
    if (problem.lines && problem.lines.length) {
      const list = document.createElement("ul");
      list.className = "reasons";
      for (const line of problem.lines) {
        const item = document.createElement("li");
        item.textContent = line;
        list.appendChild(item);
      }
      view.bubble.appendChild(list);
    }
    if (problem.detail) {
      const detail = document.createElement("p");
      detail.className = "detail";
      detail.textContent = problem.detail;
      view.bubble.appendChild(detail);
    }
    if (problem.signIn) {
      const link = document.createElement("a");
      link.href = root.dataset.loginUrl;
      link.textContent = "Sign in again";
      view.bubble.appendChild(link);
    } else {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "retry";
      button.textContent = "Try again";
      button.addEventListener("click", retry);
      view.bubble.appendChild(button);
    }
    reveal(view.bubble);
  }

  // Why a provider did not answer, in words for people who use the chat (no
  // breaker vocabulary: "open" or "cooldown" mean nothing to them).
  const PLAIN_REASONS = {
    open: "temporarily unavailable",
    forced_open: "switched off for maintenance",
    half_open_busy: "temporarily unavailable",
    cooldown: "busy",
    rate_limit: "busy",
    overloaded: "overloaded",
    timeout: "took too long",
    transport: "could not be reached",
    server_error: "had an error",
    malformed_response: "sent an unreadable answer",
    auth: "is not set up correctly",
    permission: "is not set up correctly",
    not_found: "is not set up correctly",
    quota_exhausted: "has used up its quota",
    context_window: "cannot take a conversation this long",
    context_length: "cannot take a conversation this long",
    deadline: "was not tried in time",
    breaker_store_unavailable: "temporarily unavailable",
  };
  const plainReason = (reason) => PLAIN_REASONS[reason] || "could not answer";

  // The JSON error of a refused request (503 when every provider failed, 401, ...).
  async function problemOf(response) {
    let error = {};
    try {
      error = (await response.json()).error || {};
    } catch (ignored) {
      error = {};
    }
    if (error.code === "all_providers_failed") {
      const providers = error.providers || [];
      const wait = parseInt(response.headers.get("Retry-After") || "", 10);
      return {
        message: providers.length
          ? "No provider could answer just now."
          : "No provider is switched on, so nobody can answer.",
        // One line per provider, then when to try again: never run together.
        lines: providers.map((p) => p.provider + " " + plainReason(p.reason) + "."),
        detail: wait > 0 ? "Try again in about " + wait + " s." : "",
      };
    }
    if (response.status === 401) {
      return { message: error.message || "Your session has ended.", signIn: true };
    }
    if (response.status === 403) {
      return { message: "Your session expired; reload the page.", signIn: true };
    }
    return { message: error.message || "The request failed (HTTP " + response.status + ")." };
  }

  // Until the first word arrives: "waiting for primary… 4 s", counting, then
  // "switched to secondary · waiting 2 s" when the request moves on. The page
  // starts with the provider that should answer first (the route's first whose
  // breaker admits requests) and asks the server who is being asked now
  // (/chat/progress/<id>) every 700 ms.
  function waitFor(view, progressId) {
    const status = document.createElement("p");
    status.className = "waiting";
    status.setAttribute("role", "status");
    let provider = root.dataset.firstProvider || "";
    let switched = false;
    let since = Date.now();
    let stopped = false;
    const show = () => {
      const seconds = Math.floor((Date.now() - since) / 1000);
      const who = provider || "an answer";
      status.textContent = switched
        ? "switched to " + provider + " \u00b7 waiting\u2026 " + seconds + " s"
        : "waiting for " + who + "\u2026 " + seconds + " s";
    };
    const poll = async () => {
      if (stopped || !progressId) return;
      try {
        const response = await fetch(root.dataset.progressUrl.replace("ID", progressId), {
          headers: { Accept: "application/json" },
        });
        const now = response.ok ? await response.json() : {};
        if (!stopped && now.provider && now.provider !== provider) {
          switched = (now.tried || []).length > 1 || (provider !== "" && now.provider !== provider);
          provider = now.provider;
          since = Date.now();
          show();
        }
      } catch (ignored) {
        // Progress is a courtesy: the answer itself still arrives.
      }
    };
    show();
    view.bubble.insertBefore(status, view.footer);
    const timer = window.setInterval(show, 1000);
    const poller = window.setInterval(poll, 700);
    return {
      stop() {
        stopped = true;
        window.clearInterval(timer);
        window.clearInterval(poller);
        status.remove();
      },
    };
  }

  const newProgressId = () =>
    window.crypto && crypto.randomUUID
      ? crypto.randomUUID()
      : Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);

  class Problem extends Error {
    constructor(problem) {
      super(problem.message);
      this.problem = problem;
    }
  }

  function describeCalls(calls) {
    return calls
      .filter(Boolean)
      .map((call) => "\n\u2192 tool call: " + call.name + "(" + call.args + ")")
      .join("");
  }

  async function ask(text) {
    turns.push({ role: "user", content: text });
    const mine = render("user", text);
    const view = render("assistant", "");
    view.bubble.classList.add("pending");
    let meta = null;
    let answer = "";
    const calls = [];
    let finished = false;
    const progressId = newProgressId();
    const waiting = waitFor(view, progressId);
    try {
      const response = await fetch(root.dataset.sendUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({
          messages: turns.map((t) => ({ role: t.role, content: t.content })),
          progress_id: progressId,
        }),
      });
      if (!response.ok) throw new Problem(await problemOf(response));
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
            waiting.stop();
            describe(view.footer, meta, false);
          } else if (event.type === "delta") {
            answer += event.text;
            view.body.textContent = answer + describeCalls(calls);
            reveal(view.bubble);
          } else if (event.type === "tool_call") {
            // The first piece of a call has its id and name; later ones add arguments.
            const call = (calls[event.index] = calls[event.index] || { name: "", args: "" });
            if (event.id) call.name = event.function.name;
            call.args += event.function.arguments || "";
            view.body.textContent = answer + describeCalls(calls);
            reveal(view.bubble);
          } else if (event.type === "done") {
            finished = true;
            if (meta) describe(view.footer, meta, true);
            if (meta && event.continued_from && event.continued_from.length) {
              // Another provider finished the answer after the first one's stream was cut.
              meta = Object.assign({}, meta, {
                finishedBy: event.provider,
                continuedFrom: event.continued_from,
              });
              describe(view.footer, meta, true);
            }
          } else if (event.type === "error") {
            throw new Problem({
              message: "The answer broke off: " + event.message,
              detail: "The partial answer above is not kept.",
            });
          }
        }
      }
      if (!finished) {
        throw new Problem({ message: "The connection closed before the answer was complete." });
      }
      turns.push({ role: "assistant", content: answer, meta: meta });
      save();
    } catch (error) {
      // Keep the conversation consistent: the failed turn is not sent again.
      turns.pop();
      save();
      const problem = error.problem || { message: "The answer could not be fetched: " + error.message };
      fail(view, problem, () => {
        mine.bubble.remove();
        view.bubble.remove();
        submit(text);
      });
    } finally {
      waiting.stop();
      view.bubble.classList.remove("pending");
    }
  }

  async function submit(text) {
    if (!text || send.disabled) return;
    send.disabled = true;
    try {
      await ask(text);
    } finally {
      send.disabled = false;
      prompt.focus();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    prompt.value = "";
    submit(text);
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
