"""The service's endpoints, one :class:`fastapi.APIRouter` per area: the page and probes, faces,
liveness, the gallery's people, the photo library's People tab, and style transfer."""
