// Every page: the session's CSRF token, the JSON API, the page's data island, logging out.
// Served from /static (the Content-Security-Policy runs no inline script); data comes only from
// the JSON data island `page-data`, and nothing a user wrote is ever put in as HTML.
'use strict';
const csrf = document.querySelector('meta[name=csrf]')?.content;

function pageData() {
  const island = document.getElementById('page-data');
  return island ? JSON.parse(island.textContent) : {};
}

async function api(method, url, body) {
  const r = await fetch(url, {method, headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                              body: body === undefined ? undefined : JSON.stringify(body)});
  if (!r.ok) { const e = await r.json().catch(() => ({error: r.statusText})); throw new Error(e.error); }
  return r;
}

async function logout() { await api('POST', '/api/logout'); location = '/login'; }
document.getElementById('logout')?.addEventListener('click', logout);
