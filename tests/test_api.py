from __future__ import annotations

from accessctl import api
from accessctl.storage.gallery import NewTemplate


def test_public_api_round_trip(astronaut_path, gallery_path) -> None:
    image = api.load_image(astronaut_path)
    assert len(api.detect_faces(image)) == 1
    ((face, vec),) = api.face_encodings(image)
    assert vec.shape == (128,) and api.face_distance(vec, vec) == 0.0
    with api.open_gallery(str(gallery_path)) as g:
        g.add_person("E1", "Eileen", [NewTemplate(vec, 1.0, "api")])
        assert api.identify(g, vec, 0.6).person.name == "Eileen"
