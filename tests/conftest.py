import os

# Tests never touch the network: the hub client must answer from its (empty) cache at once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("VITC_TEST", "1")

import numpy as np
import pytest
import torch
from PIL import Image

# The slow lane: tests that took 5 s or more on the 2-core CI machine (pytest --durations, 2026-12-01; the bundle,
# export, diagnostics and stages entries from `make test-fast` under xdist on 2026-12-02), mostly training, benches,
# exports and CLIs in subprocesses; also those whose module fixture trains or exports. A name with [params] marks
# only that case. `make test-fast` (-m "not slow") runs the rest in under 3 minutes; `make test` and CI run everything.
SLOW = {
    "test_fashion.py": {
        "test_the_best_epoch_is_chosen_on_the_holdout_not_on_val",
        "test_eval_every_records_held_out_points_against_images_seen",
        "test_prune_retrains_a_fashion_student_with_the_fashion_preset_and_none_needs_no_teacher",
    },
    "test_shipped_models.py": {"test_a_shipped_model_matches_the_full_test_set_when_present"},
    "test_pipeline.py": {"test_pipeline_end_to_end_skips_and_from", "test_from_needs_the_earlier_stages"},
    "test_prune.py": {
        "test_pipeline_reruns_from_prune_when_its_ratio_changes",
        "test_prune_resume_rebuilds_the_pruned_shape",
        "test_pruned_student_exports_and_validates",
        "test_cli_prune_writes_a_pruned_student",
        "test_info_shows_the_pruned_widths",
        "test_pruned_student_quantizes_with_torch_and_predicts",
    },
    "test_front_door.py": {
        "test_card_commands_in_an_empty_folder",
        "test_a_small_dataset_is_valid_with_the_default_batch",
        "test_teacher_one_epoch_with_the_default_warmup",
        "test_default_inputs_that_are_missing_name_the_command",
    },
    "test_cli_train.py": "*",
    "test_cli_export.py": "*",
    "test_bad_input.py": "*",
    "test_diagnostics.py": {
        "test_probe_beats_chance_and_falls_to_chance_on_shuffled_labels",
        "test_features_from_an_exported_artifact_equal_pytorchs",
        "test_attention_from_an_fp32_artifact_equals_pytorch",
        "test_openvino_fuses_attention_and_vitc_taps_its_query_and_key",
    },
    "test_bench.py": {
        "test_bench_repeats_and_by_hand_baselines",
        "test_bench_rows_statuses_and_report_files",
        "test_timing_workers_load_only_their_runtime",
        "test_a_failing_worker_becomes_an_error_row",
        "test_bench_reports_validation_failure",
        "test_a_slow_mode_in_every_other_round_is_marked_unstable",
        "test_openvino_profile_counts_the_matmul_flops",
        "test_in_process_timing_is_still_available",
    },
    "test_export.py": {
        "test_nncf_auto_keeps_the_defaults_only_when_they_agree_with_fp32",
        "test_openvino_ir_carries_its_runtime_precision",
        "test_onnx_int8_mode_auto_is_dynamic_for_vits_and_static_on_request",
        "test_onnx_external_data_outside_folder_is_refused",
        "test_export_load_compare[onnx-fp32]",
        "test_export_load_compare[onnx-fp16]",
        "test_export_load_compare[onnx-int8]",
        "test_export_load_compare[openvino-fp32]",
        "test_export_load_compare[openvino-fp16]",
        "test_openvino_loader_reuses_its_input_buffer_without_mixing_calls",
        "test_onnx_metadata_and_dynamic_batch",
    },
    "test_bundle.py": {
        "test_in_graph_int8_quantizes_as_the_float_input_artifact_does",
        "test_bundle_runs_without_torch_and_agrees_with_vitc_predict",
        "test_the_bench_feeds_an_in_graph_artifact_pixels_and_times_its_serving_path",
        "test_in_graph_artifact_takes_pixels_and_computes_the_pytorch_function[onnx]",
        "test_in_graph_artifact_takes_pixels_and_computes_the_pytorch_function[openvino]",
        "test_an_export_stage_writes_both_pre_processings_where_the_target_has_them",
        "test_bundle_refuses_what_cannot_run_without_torch_and_a_full_out",
        "test_selftest_passes_a_good_bundle_and_catches_perturbed_weights_without_torch",
        "test_vitc_predict_selftest_checks_any_artifact_with_a_manifest",
    },
    "test_clean_output.py": "*",
    "test_outlock.py": {"test_two_trainings_started_at_the_same_instant_into_one_folder"},
    "test_int8_isa.py": {
        "test_the_int8_path_is_what_cpuid_says_not_the_os",
        "test_int8_isa_is_recorded_and_auto_follows_this_cpu",
        "test_portable_weights_keep_to_seven_bits",
        "test_unknown_int8_isa_is_one_sentence",
    },
    "test_reliability.py": {"test_disk_full_during_export_is_one_line_and_leaves_no_artifact"},
    "test_tensorrt.py": {"test_prepare_onnx[int8-11]"},
    "test_stages.py": {
        "test_cli_and_pipeline_name_a_stage_folder_and_files_alike",
        "test_the_int8_gate_fails_alike_in_the_cli_and_the_pipeline",
        "test_one_export_stage_loads_the_checkpoint_and_its_val_split_once",
        "test_quantize_force_leaves_no_stale_artifact_for_the_bench",
        "test_a_checkpoint_whose_data_is_gone_gets_one_sentence",
        "test_an_imagefolder_model_is_validated_on_its_own_data",
    },
}


def pytest_configure(config):
    # Under pytest-xdist (`make test` runs a worker per usable core) each worker gets cores of its own: pinned by
    # affinity, which the subprocess CLIs inherit and vitc's default thread count follows (vitc.cores.usable_cores),
    # so the workers never oversubscribe the cores with spinning OpenMP threads.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    n = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker.startswith("gw") and n > 1 and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        i = int(worker[2:]) % n  # a worker that replaces a crashed one gets the next id (gw2, ...)
        if len(cores) >= n:  # a slice each; the last worker also takes the cores left over
            share = len(cores) // n
            mine = cores[i * share : None if i == n - 1 else (i + 1) * share]
        else:  # more workers than cores: round robin, one core each
            mine = [cores[i % len(cores)]]
        os.sched_setaffinity(0, mine)
        torch.set_num_threads(len(mine))
        # numpy's OpenBLAS was loaded (with a thread per core) before the pinning; threadpoolctl resizes the pools
        # already loaded
        from threadpoolctl import threadpool_limits

        threadpool_limits(len(mine))


def pytest_report_header(config):
    """Tests that compare int8 outputs hold on every CPU class; the header says which int8 path this run had."""
    from vitc.export.edge_run import int8_isa

    i = int8_isa()
    return f"int8 path: {i['path']} ({'saturating u8 x s8 products' if i['saturates'] else 'no int8 saturation'})"


def pytest_collection_modifyitems(items):
    for item in items:
        names = SLOW.get(item.path.name, ())
        listed = names == "*" or item.originalname in names or item.name in names
        if listed or "executorch" in item.name or "openvino-int8" in item.name:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def tiny_student():
    from vitc.models import create_model

    torch.manual_seed(0)
    m, _ = create_model("deit_tiny", num_classes=10, img_size=32, patch_size=8, depth=2)
    return m


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """A tiny ImageFolder tree of real digits images in mixed PNG modes (L, RGBA, 16-bit, P).
    Shared by the session: tests that change it work on a copy."""
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("data") / "ds"
    modes = ["L", "RGBA", "I;16", "P", "RGB"]
    for split, ids in (("train", range(0, 60)), ("val", range(60, 80))):
        for i in ids:
            c = int(d.target[i])
            if c > 2:
                continue
            folder = root / split / f"digit{c}"
            folder.mkdir(parents=True, exist_ok=True)
            a = (d.images[i] * (255 / 16)).astype(np.uint8)
            mode = modes[i % len(modes)]
            if mode == "I;16":
                img = Image.fromarray(a.astype(np.uint16) * 257)  # uint16 -> mode I;16
                assert img.mode == "I;16"
            else:
                img = Image.fromarray(a).convert(mode)
            img.save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """A tiny deit (img 32, patch 8, depth 2) trained briefly on digits, saved as a vitc checkpoint dir."""
    from vitc import checkpoint as ckpt
    from vitc.data import eval_tensors, load_source
    from vitc.models import create_model, data_config

    torch.manual_seed(0)
    m, spec = create_model("deit_tiny", 10, 32, 8, depth=2)
    pre = data_config(m, 32, 1.0)
    src = load_source("digits", 32)
    X, Y = eval_tensors(src.train, pre)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m.train()
    for i in range(60):
        idx = torch.randint(len(X), (64,))
        loss = torch.nn.functional.cross_entropy(m(X[idx]), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    ckpt.save_checkpoint(
        out,
        m.eval(),
        {
            "stage": "distill",
            "model": spec.to_json(),
            "classes": src.classes,
            "preprocess": pre,
            "config": {"data": "digits"},
            "metrics": {},
        },
    )
    return out


@pytest.fixture(scope="session")
def digit_png(tmp_path_factory):
    from sklearn.datasets import load_digits

    d = load_digits()
    p = tmp_path_factory.mktemp("png") / "seven.png"
    i = int(np.flatnonzero(d.target == 7)[0])
    Image.fromarray((d.images[i] * (255 / 16)).astype(np.uint8)).save(p)
    return p
