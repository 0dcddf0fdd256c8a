"""mke_experiments: MKE on real data (mfeat, bring-your-own arrays, RAVDESS, NYU Depth V2,
VGGSound/AudioSet). Built on ``mke_theory``'s objective, records and statistics."""
