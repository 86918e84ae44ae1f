// The disclosure page: the bundle for the previewed number and dates, as a download.
'use strict';
const download = document.getElementById('download-bundle');
if (download) download.onclick = async () => {
  const r = await api('POST', '/api/export', pageData().query);
  const a = document.createElement('a'); a.href = URL.createObjectURL(await r.blob());
  a.download = 'disclosure.zip'; a.id = 'bundle-link'; a.textContent = 'disclosure.zip';
  document.querySelector('main').appendChild(a); a.click();
};
