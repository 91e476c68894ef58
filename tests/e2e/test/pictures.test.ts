// The track picture as people see it: rendered to PNG by rsvg-convert (librsvg, what GNOME and
// many converters use) and looked at pixel by pixel where the picture makes a promise: one time
// axis (the stop-copy marker at the same x in every panel), the PCI hole hatched, a zoom panel
// with dirt in it, colour by dirty fraction.

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { cli, tempDir } from "./helpers.ts";
import { decodePng, type Png } from "./png.ts";
import { needTools } from "./tools.ts";

const run = promisify(execFile);
const tmp = tempDir();
afterAll(tmp.cleanup);

async function render(
  rsvg: string,
  args: readonly string[],
  name: string,
): Promise<{ svg: string; png: Png }> {
  const svgPath = join(tmp.dir, `${name}.svg`);
  const r = await cli(["track", ...args, "--fast", "--quiet", "--svg", svgPath]);
  expect(r.code, r.stderr).toBe(0);
  const pngPath = join(tmp.dir, `${name}.png`);
  await run(rsvg, [svgPath, "-o", pngPath]);
  return { svg: readFileSync(svgPath, "utf8"), png: decodePng(readFileSync(pngPath)) };
}

/** The y range [top, bottom) of the plot rectangle of group `name` (its first rect). */
function plotOf(svg: string, name: string): { x: number; y: number; w: number; h: number } {
  const g = svg.slice(svg.indexOf(`<g class="${name}"`));
  const m = /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/.exec(g)!;
  return { x: Number(m[1]), y: Number(m[2]), w: Number(m[3]), h: Number(m[4]) };
}

const colourful = ([r, g, b]: number[]) => Math.max(r!, g!, b!) - Math.min(r!, g!, b!) > 60;

describe("the track picture, rendered", () => {
  it("mlx5-p2p: the stop-copy marker at one x in all three panels, the PCI hole hatched, the hot range zoomed", async (ctx) => {
    const [rsvg] = needTools(["rsvg-convert"], "librsvg2-bin", ctx.skip);
    const { svg, png } = await render(
      rsvg!,
      ["--host", "sim:mlx5-p2p", "--duration", "20s", "--phase-switch", "15s"],
      "p2p",
    );
    expect(png.width).toBe(900);
    const marker = Number(/<line x1="([\d.]+)" x2="\1" [^>]*stroke-dasharray="5 3"/.exec(svg)![1]);
    const panels = ["rate-chart", "heatmap", "heatmap-zoom"].map((n) => plotOf(svg, n));
    for (const p of panels) {
      // Halfway down each panel, within one dash period (5 on, 3 off), the marker's pixels (it
      // straddles two pixel columns) are clearly darker than those 15 px to its left.
      const y = Math.round(p.y + p.h * 0.55);
      const lum = ([r, g, b]: number[]) => r! + g! + b!;
      const hits = [0, 1, 2, 3, 4, 5, 6, 7].filter((d) => {
        const on = Math.min(
          lum(png.at(Math.floor(marker) - 1, y + d)),
          lum(png.at(Math.floor(marker), y + d)),
        );
        return on < lum(png.at(Math.floor(marker) - 15, y + d)) * 0.7;
      });
      expect(hits.length, `marker in the panel at y ${y}`).toBeGreaterThan(2);
      expect(p.x).toBe(panels[0]!.x);
      expect(p.w).toBe(panels[0]!.w);
    }
    // The PCI hole (2..4 GiB of an 18 GiB map) is hatched grey: light and colourless.
    const map = panels[1]!;
    const hole = png.at(Math.round(map.x + 40), Math.round(map.y + map.h * (3 / 18)));
    expect(colourful(hole)).toBe(false);
    expect(hole[0]).toBeGreaterThan(150);
    // The zoom panel is mostly dirt (the uniform writer's 64 MiB fill it).
    const zoom = panels[2]!;
    let dirt = 0;
    for (let i = 0; i < 20; i++)
      if (colourful(png.at(Math.round(zoom.x + 30 + i * 25), Math.round(zoom.y + zoom.h / 2)))) dirt++;
    expect(dirt).toBeGreaterThan(15);
  });

  it("edu-type1: a type1 container's every-page report fills the map; an idle run leaves it clean", async (ctx) => {
    const [rsvg] = needTools(["rsvg-convert"], "librsvg2-bin", ctx.skip);
    const full = await render(rsvg!, ["--host", "sim:edu-type1", "--duration", "3s"], "type1");
    const idle = await render(rsvg!, ["--host", "sim", "--workload", "idle", "--duration", "3s"], "idle");
    const at = (r: { svg: string; png: Png }) => {
      const p = plotOf(r.svg, "heatmap");
      return r.png.at(Math.round(p.x + p.w / 2), Math.round(p.y + p.h * 0.2));
    };
    expect(colourful(at(full))).toBe(true);
    expect(colourful(at(idle))).toBe(false);
    expect(full.svg).toMatch(/all over-report/);
    expect(idle.svg).toMatch(/no page was dirtied/);
  });
});
