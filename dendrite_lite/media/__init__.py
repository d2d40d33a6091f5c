"""Content repository: uploads, downloads, thumbnails and URL previews."""
