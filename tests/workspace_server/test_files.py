"""Uploads on the local backend: size limit, type decided by content, the raw-body form, usage; and on S3 (moto
server) with SSE-KMS on every object."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from mattermostdriver import Driver
from mattermostdriver.exceptions import ContentTooLarge
from moto.server import ThreadedMotoServer
from PIL import Image

from tests.workspace_server.conftest import ServerProcess
from tests.workspace_server.content_helpers import driver, image_size, make_user, png_bytes

MAX_FILE_SIZE = 300_000


@pytest.fixture(scope="module")
def small_server(
    create_database: Callable[[str], str],
    spawn_server: Callable[..., ServerProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> ServerProcess:
    running = spawn_server(
        create_database("ws_files"), tmp_path_factory.mktemp("ws_files"), WS_MAX_FILE_SIZE=str(MAX_FILE_SIZE)
    )
    running.wait_ready()
    return running


def initial_admin(server: ServerProcess) -> Driver:
    from argon2 import PasswordHasher

    response = httpx.put(
        f"{server.base_url}/api/v4/canopy/initial_admin",
        headers={"Authorization": f"Bearer {server.control_token}"},
        json={"email": "admin@acme.test", "username": "admin", "password_hash": PasswordHasher().hash("admin-pass")},
    )
    assert response.status_code == 200, response.text
    return driver(server, "admin", "admin-pass")


@pytest.fixture(scope="module")
def uploader(small_server: ServerProcess) -> tuple[Driver, dict[str, Any]]:
    admin = initial_admin(small_server)
    team = admin.teams.get_team_by_name(small_server.team_name)
    _, password = make_user(admin, team["id"], "ursula")
    client = driver(small_server, "ursula", password)
    return client, client.channels.get_channel_by_name(team["id"], "town-square")


def raw_upload(server: ServerProcess, client: Driver, channel_id: str, name: str, content: Any) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/api/v4/files",
        params={"channel_id": channel_id, "filename": name},
        content=content,
        headers={"Authorization": f"Bearer {client.client.token}"},
        timeout=30,
    )


def usage(server: ServerProcess) -> dict[str, Any]:
    response = httpx.get(
        f"{server.base_url}/api/v4/canopy/usage", headers={"Authorization": f"Bearer {server.control_token}"}
    )
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def test_files_over_the_limit_are_refused_with_413(small_server: ServerProcess, uploader: Any) -> None:
    client, channel = uploader
    big = os.urandom(MAX_FILE_SIZE + 1)
    with pytest.raises(ContentTooLarge, match="exceeds the maximum allowed 300000 bytes"):
        client.files.upload_file(channel["id"], {"files": ("big.bin", big)})
    declared = raw_upload(small_server, client, channel["id"], "big.bin", big)
    assert declared.status_code == 413
    assert declared.json()["id"] == "api.file.upload_file.too_large_detailed.app_error"
    assert declared.headers["content-type"] == "application/json"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    streamed = raw_upload(small_server, client, channel["id"], "big.bin", chunks())
    assert streamed.status_code == 413
    # Just under the limit passes.
    fits = client.files.upload_file(channel["id"], {"files": ("fits.bin", big[:MAX_FILE_SIZE])})
    assert fits["file_infos"][0]["size"] == MAX_FILE_SIZE


def test_type_comes_from_content_not_name(small_server: ServerProcess, uploader: Any) -> None:
    client, channel = uploader
    exe = b"MZ\x90\x00\x03\x00\x00\x00" + os.urandom(2000)
    fake = client.files.upload_file(channel["id"], {"files": ("cute-cat.png", exe, "image/png")})["file_infos"][0]
    assert fake["name"] == "cute-cat.png" and fake["extension"] == "png"
    assert fake["mime_type"] == "application/x-msdownload"
    assert "width" not in fake and "has_preview_image" not in fake
    thumbnail = httpx.get(
        f"{small_server.base_url}/api/v4/files/{fake['id']}/thumbnail",
        headers={"Authorization": f"Bearer {client.client.token}"},
    )
    assert thumbnail.status_code == 400
    assert thumbnail.json()["id"] == "api.file.get_file_thumbnail.no_thumbnail.app_error"
    download = client.files.get_file(fake["id"])
    assert download.content == exe
    assert download.headers["Content-Type"] == "application/x-msdownload"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"

    text_as_png = client.files.upload_file(channel["id"], {"files": ("notes.png", b"just text")})["file_infos"][0]
    assert text_as_png["mime_type"] == "application/octet-stream" and "has_preview_image" not in text_as_png

    # A real image keeps its type whatever it is called, and large ones get a 1920-pixel-wide preview.
    out = io.BytesIO()
    Image.new("RGB", (2400, 300), (0, 90, 200)).save(out, "JPEG")
    real = client.files.upload_file(channel["id"], {"files": ("scan.dat", out.getvalue())})["file_infos"][0]
    assert real["mime_type"] == "image/jpeg" and (real["width"], real["height"]) == (2400, 300)
    assert image_size(client.files.get_file_preview(real["id"]).content) == (1920, 240)
    assert client.files.get_file(real["id"]).headers["Content-Disposition"].startswith("inline;")


def test_raw_body_upload_and_usage(small_server: ServerProcess, uploader: Any) -> None:
    client, channel = uploader
    before = usage(small_server)["storage_bytes"]
    response = raw_upload(small_server, client, channel["id"], "../../etc/passwd notes.txt", b"hello, world\n")
    assert response.status_code == 201, response.text
    info = response.json()["file_infos"][0]
    assert info["name"] == "passwd notes.txt" and info["mime_type"] == "text/plain" and info["size"] == 13
    assert client.files.get_file(info["id"]).content == b"hello, world\n"
    assert usage(small_server)["storage_bytes"] == before + 13
    # The files stay under the storage directory, whatever their names said.
    assert all(p.resolve().is_relative_to(small_server.files_dir.resolve()) for p in small_server.files_dir.rglob("*"))
    assert not (small_server.files_dir.parent / "etc").exists()

    post = client.posts.create_post({"channel_id": channel["id"], "message": "notes", "file_ids": [info["id"]]})
    assert post["file_ids"] == [info["id"]]
    again = client.posts.create_post({"channel_id": channel["id"], "message": "again", "file_ids": [info["id"]]})
    assert again["file_ids"] == []  # a file belongs to one post


# --- S3 --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_setup(moto: str) -> dict[str, str]:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    key_id = session.client("kms", endpoint_url=moto).create_key(Description="workspace files")["KeyMetadata"]["KeyId"]
    session.client("s3", endpoint_url=moto).create_bucket(Bucket="canopy-files")
    return {"endpoint": moto, "key_id": key_id}


@pytest.fixture(scope="module")
def s3_server(
    create_database: Callable[[str], str],
    spawn_server: Callable[..., ServerProcess],
    tmp_path_factory: pytest.TempPathFactory,
    s3_setup: dict[str, str],
) -> ServerProcess:
    running = spawn_server(
        create_database("ws_s3"),
        tmp_path_factory.mktemp("ws_s3"),
        WS_S3_BUCKET="canopy-files",
        WS_S3_PREFIX="workspaces/acme",
        WS_S3_KMS_KEY_ID=s3_setup["key_id"],
        WS_MAX_FILE_SIZE=str(20 * 1024 * 1024),
        AWS_ENDPOINT_URL=s3_setup["endpoint"],
        **AWS_ENV,
    )
    running.wait_ready()
    return running


def test_files_on_s3_are_encrypted_with_the_workspace_key(
    s3_server: ServerProcess, s3_setup: dict[str, str], tmp_path: Path
) -> None:
    admin = initial_admin(s3_server)
    team = admin.teams.get_team_by_name(s3_server.team_name)
    channel = admin.channels.get_channel_by_name(team["id"], "town-square")
    image = png_bytes(300, 200)
    # 9 MB goes up in several parts (boto3's multipart threshold is 8 MB): each must carry the key as well.
    large = os.urandom(9 * 1024 * 1024)
    infos = admin.files.upload_file(
        channel["id"], [("files", ("photo.png", image, "image/png")), ("files", ("dump.bin", large))]
    )["file_infos"]
    assert [i["name"] for i in infos] == ["photo.png", "dump.bin"]
    assert admin.files.get_file(infos[0]["id"]).content == image
    assert admin.files.get_file(infos[1]["id"]).content == large
    assert image_size(admin.files.get_file_thumbnail(infos[0]["id"]).content) == (120, 80)

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_setup["endpoint"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="canopy-files")["Contents"]]
    # The original and, for the image, its thumbnail and preview; all under the workspace's prefix.
    assert len(keys) == 4 and all(k.startswith("workspaces/acme/") for k in keys)
    assert sum(k.endswith("_thumb.jpg") for k in keys) == 1 and sum(k.endswith("_preview.jpg") for k in keys) == 1
    for key in keys:
        head = s3.head_object(Bucket="canopy-files", Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"].endswith(s3_setup["key_id"]), key
    # The large file really went up in parts (a multipart ETag ends with the part count).
    assert sum(s3.head_object(Bucket="canopy-files", Key=k)["ETag"].endswith('-2"') for k in keys) == 1
    stored = sum(s3.head_object(Bucket="canopy-files", Key=k)["ContentLength"] for k in keys)
    used = usage(s3_server)["storage_bytes"]
    assert used == stored and used > len(large) + len(image)
    # Nothing was written to the local directory.
    assert not any(p.is_file() for p in s3_server.files_dir.rglob("*"))


def test_s3_bucket_without_a_kms_key_is_a_configuration_error(
    create_database: Callable[[str], str], spawn_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = spawn_server(create_database("ws_s3_bad"), tmp_path, WS_S3_BUCKET="canopy-files")
    assert server.proc.wait(timeout=60) == 2
    assert "WS_S3_KMS_KEY_ID" in server.log()
