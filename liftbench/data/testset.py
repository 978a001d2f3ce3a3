"""What the test set holds, per action group, against the official Human3.6M test set.

The official protocol tests on S9 and S11 x 15 action groups x 2 takes x 4 cameras = 240 videos.
Data files need not hold all of them: VideoPose3D's ``data_3d_h36m.npz`` and every 2D file made from
it drop the S11 "Directions" take (every camera), so that group has 12 videos instead of 16. A
published number computed on such files and one computed on the full set differ in what they
average; the protocol card therefore records videos and frames per group and names what is absent.
Other datasets have no official set: their counts are recorded as found.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from liftbench.data.skeleton import action_group

H36M_TEST_SUBJECTS = ("S9", "S11")
H36M_GROUPS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
               "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether")
H36M_TAKES = 2
H36M_CAMERAS = 4


def count_test_set(videos: Iterable[tuple[str, str, int, int]], dataset: str) -> dict:
    """Per action group: videos, frames and takes present; for ``h36m`` also the official expected
    videos and a list of what is absent.

    ``videos``: one ``(subject, action, camera, n_frames)`` per test video (an action name is a take,
    e.g. "Directions 1"; its group is the first word). Pure: no files are read."""
    per_group: dict[str, dict] = defaultdict(
        lambda: {"videos": 0, "frames": 0, "takes": set(), "cameras": defaultdict(set)})
    for subject, action, camera, n_frames in videos:
        g = per_group[action_group(action)]
        g["videos"] += 1
        g["frames"] += int(n_frames)
        g["takes"].add((subject, action))
        g["cameras"][(subject, action)].add(int(camera))
    official = dataset == "h36m"
    groups = {}
    absent: list[str] = []
    names = list(H36M_GROUPS) + sorted(set(per_group) - set(H36M_GROUPS)) if official else sorted(per_group)
    for name in names:
        g = per_group.get(name, {"videos": 0, "frames": 0, "takes": set(), "cameras": {}})
        entry = {"videos": g["videos"], "frames": g["frames"], "takes": len(g["takes"])}
        if official:
            entry["videos_expected"] = len(H36M_TEST_SUBJECTS) * H36M_TAKES * H36M_CAMERAS
            for subject in H36M_TEST_SUBJECTS:
                takes = sorted(a for s, a in g["takes"] if s == subject)
                if len(takes) < H36M_TAKES:
                    missing = H36M_TAKES - len(takes)
                    absent.append(f"{subject} {name}: {missing} of {H36M_TAKES} takes absent (every camera; "
                                  f"present: {', '.join(repr(t) for t in takes) or 'none'})")
                for take in takes:
                    cams = g["cameras"][(subject, take)]
                    if len(cams) < H36M_CAMERAS:
                        absent.append(f"{subject} '{take}': {H36M_CAMERAS - len(cams)} of {H36M_CAMERAS} "
                                      "cameras absent")
        groups[name] = entry
    total_videos = sum(e["videos"] for e in groups.values())
    out = {"dataset": dataset, "videos": total_videos, "frames": sum(e["frames"] for e in groups.values()),
           "per_action_group": groups}
    if official:
        out["videos_expected"] = len(H36M_TEST_SUBJECTS) * len(H36M_GROUPS) * H36M_TAKES * H36M_CAMERAS
        out["official_test_set"] = "S9, S11 x 15 action groups x 2 takes x 4 cameras = 240 videos"
        out["absent"] = absent
    return out
