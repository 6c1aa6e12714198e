"""Where drives come from: video files, GPS tracks, and the two aligned."""
