"""The fleet: the council's central hub (``detector hub serve``) and each vehicle's link to it (``push``, ``live --hub``)."""
