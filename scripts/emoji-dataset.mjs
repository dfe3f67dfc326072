// Builds a labelled image folder from the npm package emoji-datasource-twitter (real 64x64 PNGs),
// in the ImageFolder layout the training job reads:
//   <out>/train/<label>/<file>.png    images to train (and validate) on
//   <out>/holdout/<label>/<file>.png  images kept apart for `evaluate`
// Deterministic: emoji are taken in the package's sort order, every 5th one held out.
// Usage: node scripts/emoji-dataset.mjs <out> [--per-class N] [--all]
//   --all: every category (skin-tone variants included) instead of the four default ones; with
//          --per-class 250 that is about 2,000 images (the benchmark's training set).
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const packageDir = join(root, "node_modules", "emoji-datasource-twitter");
const args = process.argv.slice(2);
const out = args.find((a) => !a.startsWith("--"));
const perClassIndex = args.indexOf("--per-class");
const perClass = perClassIndex >= 0 ? Number(args[perClassIndex + 1]) : 125;
if (!out || !Number.isInteger(perClass) || perClass < 10) {
  console.error("usage: node scripts/emoji-dataset.mjs <out> [--per-class N (>= 10, default 125)]");
  process.exit(2);
}
if (!existsSync(packageDir)) {
  console.error(`${packageDir} is missing: run npm ci first.`);
  process.exit(1);
}

const all = args.includes("--all");
// Four categories that look different from each other; folder names are the labels.
const categories = all
  ? {
      "Smileys & Emotion": "smileys", "People & Body": "people", "Animals & Nature": "animals", "Food & Drink": "food",
      "Travel & Places": "travel", "Activities": "activities", "Objects": "objects", "Symbols": "symbols", "Flags": "flags",
    }
  : { "Smileys & Emotion": "smileys", "Animals & Nature": "animals", "Food & Drink": "food", "Flags": "flags" };

const emoji = JSON.parse(readFileSync(join(packageDir, "emoji.json"), "utf8"))
  .filter((e) => e.has_img_twitter && categories[e.category])
  .sort((a, b) => a.sort_order - b.sort_order)
  .flatMap((e) => [e, ...(all ? Object.values(e.skin_variations ?? {}).filter((v) => v.has_img_twitter).map((v) => ({ ...e, image: v.image })) : [])]);

rmSync(out, { recursive: true, force: true });
const counts = {};
for (const [category, label] of Object.entries(categories)) {
  const members = emoji.filter((e) => e.category === category).slice(0, perClass);
  members.forEach((e, i) => {
    const split = i % 5 === 4 ? "holdout" : "train";
    const target = join(out, split, label);
    mkdirSync(target, { recursive: true });
    copyFileSync(join(packageDir, "img", "twitter", "64", e.image), join(target, e.image));
    counts[`${split}/${label}`] = (counts[`${split}/${label}`] ?? 0) + 1;
  });
}
console.log(`emoji dataset in ${out}: ${JSON.stringify(counts)}`);
