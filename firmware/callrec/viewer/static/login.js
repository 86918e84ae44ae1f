// The login page: after a good login, on to the page asked for (`next`, already checked by the
// server to be a path on this site) with the browser's own #fragment (a moment in a call).
'use strict';
document.getElementById('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await fetch('/api/login', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({user: document.getElementById('user').value,
                          password: document.getElementById('password').value})});
  if (r.ok) { location.assign(pageData().next + location.hash); return; }
  const answer = await r.json().catch(() => ({error: r.statusText}));
  document.getElementById('message').textContent = answer.error;
});
