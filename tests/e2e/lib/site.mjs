// A small real site, as a new user would put on receiptd: one page with
// five images, a stylesheet, a script, and links to a PDF (one to
// download it, one to open it), and a proxy that alters what passes.
import crypto from 'node:crypto';
import http from 'node:http';

// An 8x8 PNG of one colour, built here so that the bytes are known.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

export function png(r, g, b, size = 8) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array(size).fill([r, g, b]).flat())]);
  const raw = Buffer.concat(Array(size).fill(row));
  // Stored (uncompressed) deflate blocks: no zlib needed to know the bytes.
  const adler = (() => {
    let a = 1;
    let s = 0;
    for (const x of raw) {
      a = (a + x) % 65521;
      s = (s + a) % 65521;
    }
    const o = Buffer.alloc(4);
    o.writeUInt32BE(((s << 16) | a) >>> 0, 0);
    return o;
  })();
  const block = Buffer.alloc(5);
  block[0] = 1;
  block.writeUInt16LE(raw.length, 1);
  block.writeUInt16LE(~raw.length & 0xffff, 3);
  const idat = Buffer.concat([Buffer.from([0x78, 0x01]), block, raw, adler]);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0)),
  ]);
}

// A one-page PDF, padded with comment lines to a few hundred KiB so that a
// transfer takes several reads.
function pdf() {
  const body = [
    '%PDF-1.4',
    '1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj',
    '2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj',
    '3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R' +
      ' /Resources <</Font <</F1 5 0 R>>>>>> endobj',
    '4 0 obj <</Length 44>> stream',
    'BT /F1 24 Tf 40 70 Td (Quarterly report) Tj ET',
    'endstream endobj',
    '5 0 obj <</Type /Font /Subtype /Type1 /BaseFont /Helvetica>> endobj',
  ];
  const seed = crypto.createHash('sha256').update('receipt site fixture').digest();
  for (let i = 0; i < 3000; i++) {
    body.push('%' + crypto.createHash('sha256').update(seed).update(String(i)).digest('hex'));
  }
  body.push('trailer <</Root 1 0 R>>', '%%EOF', '');
  return Buffer.from(body.join('\n'), 'latin1');
}

export const PDF = pdf();
export const COLOURS = [[200, 40, 40], [40, 160, 60], [40, 80, 200], [220, 180, 30], [120, 60, 160]];

export const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Quarterly report</title>
<link rel="stylesheet" href="style.css">
<script src="app.js" defer></script>
</head>
<body>
<h1>Quarterly report</h1>
<p class="figures">${COLOURS.map((_, i) => `<img src="img/${i + 1}.png" width="32" height="32" alt="Figure ${i + 1}">`).join('\n')}</p>
<ul>
<li><a id="download" href="docs/report.pdf" download>Download the report (PDF)</a></li>
<li><a id="open" href="docs/report.pdf" data-receipt-open>Read the report in the browser</a></li>
<li><a id="again" href="index.html">This page again</a></li>
</ul>
</body>
</html>
`;

export const SITE = {
  'index.html': INDEX_HTML,
  'style.css': 'body { font-family: sans-serif; margin: 2em; }\nh1 { color: rgb(34, 68, 102); }\n',
  'app.js': "document.documentElement.dataset.app = 'ran';\n",
  'docs/report.pdf': PDF,
  ...Object.fromEntries(COLOURS.map((c, i) => [`img/${i + 1}.png`, png(...c)])),
};

export const sha256 = (b) => crypto.createHash('sha256').update(b).digest();
export const b64u = (b) => Buffer.from(b).toString('base64url');

/**
 * A reverse proxy on loopback (port, or any free one) in front of target (a
 * base URL) that flips one byte, at offset at, of the body of every GET of
 * path: what a broken middlebox would do. Everything else passes untouched,
 * headers included.
 */
export async function startAlteringProxy(target, path, at, port = 0) {
  const altered = [];
  const server = http.createServer((req, res) => {
    const up = http.request(target + req.url, { method: req.method, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode, upRes.rawHeaders);
      const alter = req.method === 'GET' && req.url === path && upRes.statusCode === 200;
      let offset = 0;
      upRes.on('data', (d) => {
        if (alter && at >= offset && at < offset + d.length) {
          d = Buffer.from(d);
          d[at - offset] ^= 0x20;
          altered.push(req.url);
        }
        offset += d.length;
        res.write(d);
      });
      upRes.on('end', () => res.end());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    port: server.address().port,
    altered,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}
