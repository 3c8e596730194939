"""The tick grid, defined once: every note time in stemforge is an integer tick at 480 per
beat, bars are 4/4, and the composer's tokens sit on a grid of 12 steps a beat (16ths on
every 3rd step, triplets on every 4th). MIDI files of other resolutions are scaled to it on
reading; the corpus, the groove templates, the chord plans and the novelty index all count
in these ticks, so a change here is a change of every stored table."""

TICKS_PER_BEAT = 480
BEATS_PER_BAR = 4
TICKS_PER_BAR = TICKS_PER_BEAT * BEATS_PER_BAR
GRID_PER_BEAT = 12  # token grid steps in a beat
STEP_TICKS = TICKS_PER_BEAT // GRID_PER_BEAT  # one token grid step: 40 ticks
