"""Layer 3, one run: its configuration (``TrainConfig``, ``Phase``), its data and its step
(``make_stepper``), and the whole run as one pure function (``make_train``)."""
