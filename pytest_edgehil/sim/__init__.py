"""Everything simulated: device twins, their profiles, the pty link, the SCPI analyzer twin, the activity timeline, synthetic data.

The hardware path never imports this package; the bench asks for a twin through one lazily imported function."""
