// Keys for the review page: 1 A better, 2 B better, 3 tie, 4 both bad, s skip, u undo.
// Each key presses the button carrying it in data-key, so keys and buttons do the same.
"use strict";

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target instanceof HTMLTextAreaElement || target instanceof HTMLInputElement) return;
  const button = document.querySelector(`button[data-key="${CSS.escape(event.key.toLowerCase())}"]`);
  if (button === null) return;
  event.preventDefault();
  button.form.requestSubmit(button);
});
