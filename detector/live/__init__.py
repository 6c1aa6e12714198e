"""``detector live``: the pipeline on the patrol vehicle, from a camera and gpsd, in bounded threads.

:mod:`detector.live.runner` runs it; :mod:`detector.live.commands` adds the command.
"""
