"""Other projects' configs: mmdetection 2.x translation (``mmdet2``)."""
