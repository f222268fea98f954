"""Code that reads the model and is never read by it: benchmark, FLOPs,
visualisation and demo data. Nothing under ``mmvheat.ops``,
``mmvheat.models``, ``mmvheat.checkpoint``, ``mmvheat.registry`` or
``mmvheat.compat`` imports from here."""
