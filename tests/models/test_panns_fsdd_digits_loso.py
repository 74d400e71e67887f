"""The shipped ``panns_cnn14.fsdd_digits_loso`` weight set (issue #13): loads, uses its CMVN front end, and
classifies FSDD clips through the ``audio-classification`` pipeline."""

import audiozoo


def test_weight_set_loads_with_its_cmvn_front_end():
    model = audiozoo.create_model("panns_cnn14.fsdd_digits_loso")
    assert model.num_classes == 10 and model.frontend.cmvn == "mean_var"
    assert model.frontend.sample_rate == 16000 and model.config.time_segments == 3
    assert abs(model.pretrained_metadata["metrics"]["fsdd_loso"]["mean"] - 0.822) < 1e-3
    assert [str(x) for x in model.pretrained_metadata["labels"]] == [str(d) for d in range(10)]


def test_weight_set_classifies_fsdd_clips(shared_data):
    tagger = audiozoo.pipeline("audio-classification", model="panns_cnn14.fsdd_digits_loso", top_k=1)
    files = [shared_data / "fsdd" / f"{d}_{s}_{t}.wav" for d in range(10)
             for s, t in (("george", 3), ("theo", 7))]
    results = tagger([str(f) for f in files])
    correct = sum(r["labels"][0]["label"] == f.name.split("_")[0] for f, r in zip(files, results))
    # the weights saw these speakers (trained on all five): expect nearly all right; untrained weights get ~2/20
    assert correct >= 17, correct
