"""Is the face in front of the camera a live person, or a photo or a screen?

:func:`~accessctl.liveness.saved.load_liveness` gives the shipped model
(``accessctl/assets/liveness``) or a trained one; a
:class:`~accessctl.liveness.monitor.LivenessMonitor` follows each tracked face and
turns the model's scores into the states the kiosk shows (``verdict.py``): checking,
live, spoof, unsure. The networks are in ``minifasnet.py`` and ``model.py``, their
checked weights in ``weights.py``, the per-frame cues in ``features.py`` and
``motion.py``, the head-turn challenge in ``challenge.py``.

A face is judged on two things, and both must hold for it to be live:

- **It looks live** (texture): the CNNs' P(live), averaged over short windows, is at
  or above the model's ``threshold``. Below it the face is a **spoof**: a print or a
  screen the CNNs can see.
- **It moves like a head** (motion): the motion head, a GRU over the face's last
  second of steps, finds evidence of life (parallax, a blink, speech, motion against
  the room) at or above ``motion_threshold``. A picture that looks real, however it
  is jittered, slid, turned, bent, relit or fed by a program, gives none.

A face that looks live but has shown no evidence of life is **checking**, and after
:data:`~accessctl.liveness.verdict.EVIDENCE_S` **unsure**: the door then asks for a head turn, or refuses (see
``[liveness] challenge``). No evidence is not called a spoof: a live person standing
very still gives none either.

**No second chances.** Once a track is judged a spoof it stays refused until it ends
(the face leaves the view); an attack whose score wavers is never let in on a lucky
frame.
"""
