/* The new-key page's copy button: puts the key on the clipboard and says so.
   navigator.clipboard needs a secure context (https, or localhost); elsewhere
   the key is selected and copied the old way. */
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    var status = document.getElementById(button.getAttribute("aria-describedby"));
    function say(text) { if (status) { status.textContent = text; } }
    function selectKey() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    button.addEventListener("click", function () {
      var text = source.textContent.trim();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { say("Copied."); },
          function () { selectKey(); say("Selected: press Ctrl+C (⌘C) to copy."); }
        );
      } else {
        selectKey();
        var copied = false;
        try { copied = document.execCommand("copy"); } catch (ignored) { copied = false; }
        say(copied ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.");
      }
    });
  });
})();
