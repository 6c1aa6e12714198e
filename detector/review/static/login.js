// Sign in, then go back to the page that asked (only a path on this site, as the server checked it).
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
  // The server checked ?next= (a path on this site, or the default page) and wrote it into the form.
  window.location.assign(event.target.dataset.next || "/");
});
