"""Bundle the distilled demo student with the figures its model card quotes.

Evaluates teacher and student on the `test` split with the same code as `edgeskin eval` (a
multi-exit student: every exit) and writes the student to edgeskin/assets/demo/ with those numbers
in its provenance, so a test can check that the card's figures are what eval measures. Used by
`make demo-model` for the single-exit student and the multi-exit one (--student, --out).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeskin.checkpoint import save_checkpoint
from edgeskin.data import load_images, open_dataset
from edgeskin.evaluate import evaluate
from edgeskin.image_sources import resolve_images
from edgeskin.model_loading import load_checkpoint

ASSETS = Path(__file__).resolve().parents[1] / "edgeskin" / "assets" / "demo"
DEMO = ASSETS / "skindistilvit-ti6-demo.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, default=Path("runs/teacher-ti12/best.safetensors"))
    parser.add_argument("--student", type=Path, default=Path("runs/student-ti6/best.safetensors"))
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", type=Path, default=DEMO)
    args = parser.parse_args()
    teacher, student = load_checkpoint(args.teacher), load_checkpoint(args.student)
    dataset = open_dataset(resolve_images(args.data), "test", student.config.class_names)
    images = load_images(dataset, student.config.preprocess)
    t_report = evaluate(teacher.model, images, dataset.labels)
    s_report = evaluate(student.model, images, dataset.labels)
    exits = {str(k): evaluate(student.model, images, dataset.labels, exit=k).bma for k in student.config.exit_blocks}
    provenance = {**student.provenance, "test_bma": s_report.bma, "test_accuracy": s_report.accuracy,
                  **({"exit_test_bma": exits} if len(exits) > 1 else {}),
                  "test_melanoma_sensitivity": s_report.melanoma_sensitivity,
                  "teacher_test_bma": t_report.bma, "teacher_test_accuracy": t_report.accuracy,
                  "teacher_arch": teacher.config.arch, "teacher_val_bma": teacher.provenance.get("val_bma"),
                  "teacher_epoch": teacher.provenance.get("epoch"), "teacher_command": teacher.provenance.get("command"),
                  "note": "demonstration only, not for clinical use"}
    save_checkpoint(student.model, args.out, provenance)
    print(f"teacher {teacher.config.arch}: test BMA {t_report.bma:.4f}; student {student.config.arch}: "
          f"test BMA {s_report.bma:.4f} ({s_report.bma / t_report.bma:.1%} of the teacher) -> {args.out}")
    if len(exits) > 1:
        print("per exit, test BMA: " + ", ".join(f"{k}: {v:.4f}" for k, v in exits.items()))


if __name__ == "__main__":
    main()
