"""Regenerate the `train:` block of both containers.yaml copies from the recipe config classes.

Run from the repository root after changing a recipe default or docstring:
`python scripts/sync_train_config.py --write` (without --write it prints the block).
tests/integration/test_container.py fails while the block and the classes disagree.
"""

import attrs, re, json, sys
from crucible_train.container import TRAIN_RECIPES

ADAM = {
    "beta1": "AdamW beta1",
    "beta2": "AdamW beta2",
    "eps": "AdamW epsilon",
    "weight_decay": "AdamW decoupled weight decay",
    "grad_clip_norm": "clip the global gradient norm to this (0: no clipping)",
}
TITLES = {
    "sft": "supervised fine-tuning",
    "rl": "reinforcement learning (GRPO-style, arithmetic rewards)",
    "dpo": "direct preference optimisation",
    "distill": "on-policy distillation from the latest SFT run (the teacher)",
}


def docs(cls):
    doc = cls.__doc__ or ""
    out = {}
    m = re.search(r"Args:\n(.*?)(\n\s*\n|\Z)", doc, re.S)
    if not m:
        return out
    cur = None
    for line in m.group(1).splitlines():
        mm = re.match(r"^\s{8}([a-z_0-9, ]+): (.*)$", line)
        if mm:
            cur = [n.strip() for n in mm.group(1).split(",")]
            for n in cur:
                out[n] = mm.group(2).strip()
        elif cur:
            for n in cur:
                out[n] += " " + line.strip()
    return out


def yval(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        r = repr(v)
        return r if "e" not in r else f"{v:.1e}".replace("e-0", "e-0")
    if isinstance(v, (int,)):
        return str(v)
    if isinstance(v, str):
        return (
            v
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", v) and v not in ("null", "true", "false")
            else json.dumps(v)
        )
    if isinstance(v, dict) and not v:
        return "{}"
    return json.dumps(v)


def clean(text):
    text = text.replace("``", "")
    text = re.sub(r"\s+", " ", text).strip().rstrip(".")
    return text


lines = []
lines.append(
    "train:                 # `crucible-train train sft|rl|dpo|distill`: the training recipes"
)
lines.append(
    "  renderer: qwen3_instruct # chat renderer over the tokenizer (a name `crucible-train render --renderer` accepts)"
)
lines.append(
    "  runs_root: runs      # run directories go here: <runs_root>/<recipe>-<UTC timestamp>"
)
for name, recipe in TRAIN_RECIPES.items():
    cls = recipe.load_config_class()
    d = docs(cls)
    head = f"  {name}:"
    lines.append(f"{head:<23}# {cls.__name__}: {TITLES[name]} (keys are its fields)")
    for f in attrs.fields(cls):
        default = f.default.factory() if isinstance(f.default, attrs.Factory) else f.default
        desc = ADAM.get(f.name) if f.name in ADAM else d.get(f.name, "")
        if (
            f.name in ("beta1", "beta2", "eps", "weight_decay", "grad_clip_norm")
            and f.name in d
            and "AdamW settings" not in d[f.name]
        ):
            desc = d[f.name]
        desc = clean(desc) or f.name.replace("_", " ")
        if f.name in ("eps", "beta1", "beta2", "weight_decay", "grad_clip_norm"):
            desc = ADAM[f.name]
        s = f"    {f.name}: {yval(default)}"
        lines.append(f"{s:<23}# {desc}" if len(s) < 23 else f"{s} # {desc}")
print("\n".join(lines))

# --- write: replace the train block of both containers.yaml copies -------------------------
if "--write" in sys.argv:
    block = "\n".join(lines)
    block = block.replace("None", "null").replace("β", "beta").replace("·", "*").replace("−", "-")
    for p in ("containers.yaml", "src/crucible_train/containers.yaml"):
        s = open(p, encoding="utf-8").read()
        i = s.index("train:                 #")
        open(p, "w", encoding="utf-8").write(s[:i] + block + "\n")
    print("written", file=sys.stderr)
