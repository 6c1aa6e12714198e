// Sign in, then go back to the page that asked (only a path on this site: no open redirect).
"use strict";

document.body.dataset.ready = "1"; // read by the end-to-end tests

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = document.getElementById("message");
  message.textContent = "";
  try {
    await review.post("/api/login", {
      name: document.getElementById("name").value,
      password: document.getElementById("password").value,
    });
  } catch (e) {
    message.textContent = e.message;
    message.className = "error";
    return;
  }
  const next = new URLSearchParams(window.location.search).get("next") || "/";
  window.location.assign(/^\/(?![/\\])/.test(next) ? next : "/");
});
