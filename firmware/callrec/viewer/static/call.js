// A call's page: the waveform with its markers, seeking, playback speed, links to a moment, and
// the notes, tags and holds of those who may. Markers are built as DOM text, never as HTML.
'use strict';
const {call_id: callId, markers} = pageData();
const player = document.getElementById('player'), wave = document.getElementById('wave');
let peaks = null;
const colours = {announcement: '#e90', answer: '#393', flash: '#c33', dtmf: '#36c', note: '#909'};
function duration() { return (peaks && peaks.duration_s) || player.duration || 1; }
function draw() {
  const g = wave.getContext('2d'), w = wave.width, h = wave.height;
  g.clearRect(0, 0, w, h);
  if (peaks) {
    g.fillStyle = '#678';
    for (let x = 0; x < peaks.width; x++) {
      const top = (1 - peaks.max[x]) * h / 2, bottom = (1 - peaks.min[x]) * h / 2;
      g.fillRect(x * w / peaks.width, top, Math.max(1, w / peaks.width), Math.max(1, bottom - top));
    }
  }
  for (const m of markers) {
    g.fillStyle = colours[m.kind] || '#000';
    const x = m.at_s / duration() * w;
    if (m.end_s !== undefined) { g.globalAlpha = 0.2; g.fillRect(x, 0, (m.end_s - m.at_s) / duration() * w, h);
                                 g.globalAlpha = 1; }
    g.fillRect(x, 0, 2, h);
  }
  g.fillStyle = '#d00'; g.fillRect(player.currentTime / duration() * w, 0, 2, h);
}
fetch('/api/calls/' + encodeURIComponent(callId) + '/peaks?width=' + wave.width)
  .then(r => r.json()).then(p => { peaks = p; draw(); });
const markerList = document.getElementById('markers');
for (const m of markers) {
  const span = document.createElement('span');
  span.dataset.kind = m.kind;
  span.title = m.label;
  span.textContent = `${m.kind} ${m.at_s.toFixed(1)} s`;
  markerList.appendChild(span);
}
wave.addEventListener('click', (e) => {
  const rect = wave.getBoundingClientRect();
  player.currentTime = (e.clientX - rect.left) / rect.width * duration(); draw();
});
player.addEventListener('timeupdate', () => {
  draw(); document.getElementById('share').href = '#t=' + player.currentTime.toFixed(1);
});
document.getElementById('back5').onclick = () => { player.currentTime = Math.max(0, player.currentTime - 5); };
document.getElementById('fwd5').onclick = () => { player.currentTime = player.currentTime + 5; };
document.getElementById('speed').onchange = (e) => { player.playbackRate = parseFloat(e.target.value); };
function seekToHash() {
  const m = location.hash.match(/^#t=([0-9.]+)$/);
  if (m) { player.currentTime = parseFloat(m[1]); draw(); }
}
player.addEventListener('loadedmetadata', seekToHash); window.addEventListener('hashchange', seekToHash);
function say(text) { document.getElementById('message').textContent = text; }
const base = '/api/calls/' + encodeURIComponent(callId);
const addNote = document.getElementById('add-note');
if (addNote) addNote.onclick = async () => {
  try { await api('POST', base + '/notes', {at_s: player.currentTime, text: document.getElementById('note-text').value});
        location.hash = '#t=' + player.currentTime.toFixed(1); location.reload(); }
  catch (e) { say(e.message); }
};
const addTag = document.getElementById('add-tag');
if (addTag) addTag.onclick = async () => {
  try { await api('POST', base + '/tags', {tag: document.getElementById('tag-text').value}); location.reload(); }
  catch (e) { say(e.message); }
};
const hold = document.getElementById('hold');
if (hold) hold.onclick = async () => {
  try { await api('POST', base + '/' + hold.dataset.action, {reason: document.getElementById('hold-reason').value});
        location.reload(); }
  catch (e) { say(e.message); }
};
