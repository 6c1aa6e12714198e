"""The fleet: the council's central hub (``detector hub serve``) and each vehicle's link to it (``detector push``,
``detector live --hub``)."""
