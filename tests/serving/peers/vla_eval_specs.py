"""Action specs as vla-eval 0.8.0's model servers send them in their hello (DimSpec.to_dict of its constants in
vla_eval.specs), for the unit tests; test_protocol_peers.py checks the adoption against the real package."""

POSITION_DELTA = {"name": "position", "dims": 3, "format": "delta_xyz", "range": [-1, 1]}
GRIPPER_CLOSE_POS = {"name": "gripper", "dims": 1, "format": "binary_close_positive", "range": [-1, 1]}
BRIDGE = {
    "position": POSITION_DELTA,
    "rotation": {"name": "rotation", "dims": 3, "format": "euler_xyz", "range": [-3.15, 3.15]},
    "gripper": GRIPPER_CLOSE_POS,
}
QUATERNION_XYZW = {
    "position": POSITION_DELTA,
    "rotation": {"name": "rotation", "dims": 4, "format": "quaternion_xyzw", "range": [-1, 1]},
    "gripper": GRIPPER_CLOSE_POS,
}
