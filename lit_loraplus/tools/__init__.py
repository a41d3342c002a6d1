"""Tools built on a trained or trainable LoraPlusModule: the ratio finder, checkpoint export, plots."""
