"""Onboarding a real vehicle's camera: ``detector calibrate`` writes the camera profile a drive is localized by.

* :mod:`~detector.calibration.board`: focal length, principal point and lens distortion from a printed checkerboard
  (OpenCV's pinhole or fisheye model, whichever the lens needs), with the reprojection error;
* :mod:`~detector.calibration.mount`: the mount's pitch, roll and yaw from an ordinary drive, by the road's own
  motion between frames on straight stretches (mount height and GPS antenna offset come from the user);
* :mod:`~detector.calibration.check`: the check picture, a frame with the horizon, a ground grid and the masked
  regions drawn, for a person to look at before trusting the profile.
"""
