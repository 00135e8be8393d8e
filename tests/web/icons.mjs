// Draws the app's icons (server/web/icons/): one SVG, and PNGs of 192 and
// 512 px, plain and maskable, rasterised here from the same shapes with
// pngjs so that no image tool is needed. The PNGs are committed; run this
// again only when the drawing changes:
//
//   cd tests/web && node icons.mjs

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { PNG } from 'pngjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = path.resolve(here, '..', '..', 'server', 'web', 'icons');

// The drawing, on a 512 × 512 canvas: a blue tile (the chat page's
// theme-color), a white speech bubble with a tail, three blue dots.
const BLUE = [0x1f, 0x5f, 0x8b];
const WHITE = [0xff, 0xff, 0xff];
const TILE_RADIUS = 96;
const BUBBLE = { x0: 104, y0: 120, x1: 408, y1: 344, r: 64 };
const TAIL = [[152, 320], [248, 320], [136, 412]];
const DOTS = [[184, 232], [256, 232], [328, 232]];
const DOT_RADIUS = 26;

function inRoundedRect(x, y, { x0, y0, x1, y1, r }) {
  if (x < x0 || x > x1 || y < y0 || y > y1) return false;
  const cx = Math.min(Math.max(x, x0 + r), x1 - r);
  const cy = Math.min(Math.max(y, y0 + r), y1 - r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}

function inTriangle(x, y, [[ax, ay], [bx, by], [cx, cy]]) {
  const side = (px, py, qx, qy) => (x - qx) * (py - qy) - (px - qx) * (y - qy);
  const d1 = side(ax, ay, bx, by);
  const d2 = side(bx, by, cx, cy);
  const d3 = side(cx, cy, ax, ay);
  return !((d1 < 0 || d2 < 0 || d3 < 0) && (d1 > 0 || d2 > 0 || d3 > 0));
}

/**
 * The colour at (x, y) of the 512 canvas, or null outside the tile. A
 * maskable icon fills the whole square and keeps its drawing inside the
 * central safe circle (80 % of the size), so the bubble is scaled down.
 */
function colourAt(x, y, maskable) {
  if (!maskable && !inRoundedRect(x, y, { x0: 0, y0: 0, x1: 512, y1: 512, r: TILE_RADIUS })) return null;
  const scale = maskable ? 0.72 : 1;
  const u = 256 + (x - 256) / scale;
  const v = 256 + (y - 256) / scale;
  const bubble = inRoundedRect(u, v, BUBBLE) || inTriangle(u, v, TAIL);
  if (!bubble) return BLUE;
  return DOTS.some(([cx, cy]) => (u - cx) ** 2 + (v - cy) ** 2 <= DOT_RADIUS ** 2) ? BLUE : WHITE;
}

function png(size, maskable) {
  const image = new PNG({ width: size, height: size });
  const samples = 4; // 4 × 4 samples a pixel: smooth edges
  for (let py = 0; py < size; py += 1) {
    for (let px = 0; px < size; px += 1) {
      const sum = [0, 0, 0, 0];
      for (let sy = 0; sy < samples; sy += 1) {
        for (let sx = 0; sx < samples; sx += 1) {
          const x = ((px + (sx + 0.5) / samples) * 512) / size;
          const y = ((py + (sy + 0.5) / samples) * 512) / size;
          const colour = colourAt(x, y, maskable);
          if (colour) {
            sum[0] += colour[0];
            sum[1] += colour[1];
            sum[2] += colour[2];
            sum[3] += 255;
          }
        }
      }
      const n = samples * samples;
      const at = (py * size + px) * 4;
      const covered = sum[3] / 255;
      // Colour averaged over the covered samples, coverage as alpha.
      image.data[at] = covered ? Math.round(sum[0] / covered) : 0;
      image.data[at + 1] = covered ? Math.round(sum[1] / covered) : 0;
      image.data[at + 2] = covered ? Math.round(sum[2] / covered) : 0;
      image.data[at + 3] = Math.round(sum[3] / n);
    }
  }
  return PNG.sync.write(image, { colorType: 6 });
}

const hex = (rgb) => `#${rgb.map((c) => c.toString(16).padStart(2, '0')).join('')}`;
const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512" width="512" height="512">
<rect width="512" height="512" rx="${TILE_RADIUS}" fill="${hex(BLUE)}"/>
<rect x="${BUBBLE.x0}" y="${BUBBLE.y0}" width="${BUBBLE.x1 - BUBBLE.x0}" height="${BUBBLE.y1 - BUBBLE.y0}" rx="${BUBBLE.r}" fill="${hex(WHITE)}"/>
<path d="M${TAIL.map((p) => p.join(' ')).join('L')}Z" fill="${hex(WHITE)}"/>
${DOTS.map(([cx, cy]) => `<circle cx="${cx}" cy="${cy}" r="${DOT_RADIUS}" fill="${hex(BLUE)}"/>`).join('\n')}
</svg>
`;

fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, 'icon.svg'), svg);
for (const size of [192, 512]) {
  fs.writeFileSync(path.join(dir, `icon-${size}.png`), png(size, false));
  fs.writeFileSync(path.join(dir, `maskable-${size}.png`), png(size, true));
}
console.log(`icons written to ${dir}`);
