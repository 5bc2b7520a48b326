"""The web demo on tiny models: through gradio_client against the app on
loopback, and in a real headless browser (Debian's chromium, driven by
Playwright) that uploads an image, types a prompt, runs it and sees the
result."""

import os
import shutil
import socket
import zipfile

import numpy as np
import pytest
from PIL import Image

pytest.importorskip('torch')
gr = pytest.importorskip('gradio')
pytest.importorskip('gradio_client')

from seg_bridge.demo import Demo, build_page  # noqa: E402

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def app(clipseg_dir, sam2_dir, tmp_path_factory):
  from seg_tiny import save_tiny_sam2_video
  tracker = save_tiny_sam2_video(tmp_path_factory.mktemp('sam2_video'))
  port = free_port()
  page = build_page(Demo({'clipseg': clipseg_dir, 'sam2': sam2_dir, 'tracker': tracker}, device='cpu'))
  page.launch(server_name='127.0.0.1', server_port=port, prevent_thread_lock=True, quiet=True)
  yield f'http://127.0.0.1:{port}/'
  page.close()


@pytest.fixture
def photo(tmp_path):
  path = tmp_path / 'dog.png'
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(path)
  return str(path)


def test_the_api_segments_an_upload_and_offers_the_masks(app, photo):
  from gradio_client import Client, handle_file
  client = Client(app, verbose=False)
  annotated, archive, status = client.predict(handle_file(photo), 'dog, cap', 'clipseg', 'sam2', 0.0,
                                              api_name='/segment')
  assert status.startswith('Found: ') and 'dog' in status
  assert annotated['annotations'] and all(a['label'].split()[0] in ('dog', 'cap') for a in annotated['annotations'])
  with zipfile.ZipFile(archive) as z:
    names = set(z.namelist())
  assert {'result.json', 'overlay.png', 'mask_0.png'} <= names


def test_the_video_tab_returns_the_tracked_video_and_its_masks(app, tmp_path):
  from gradio_client import Client, handle_file
  from test_seg_video import shapes_video, write_video
  clip = write_video(tmp_path / 'clip.mp4', shapes_video(count=6)[0])
  result, archive, status = Client(app, verbose=False).predict(
      handle_file(clip), 'square', 'clipseg', 'sam2', 0.0, 3, 5, api_name='/segment_video')
  assert status.startswith('5 frames; objects: #1 square')
  assert os.path.getsize(result) > 1000
  with zipfile.ZipFile(archive) as z:
    names = set(z.namelist())
  assert {'overlay.mp4', 'masks.jsonl', 'result.json', 'ids/000004.png'} <= names


def test_an_empty_prompt_is_a_message_not_a_crash(app, photo):
  from gradio_client import Client, handle_file
  with pytest.raises(Exception, match='the prompt is empty'):
    Client(app, verbose=False).predict(handle_file(photo), ' , ', 'clipseg', 'sam2', 0.0, api_name='/segment')


@pytest.mark.skipif(CHROMIUM is None, reason='no chromium installed (apt-get install chromium); Playwright cannot '
                                              'download its own browser here')
def test_a_browser_uploads_types_runs_and_sees_the_result(app, photo, tmp_path):
  playwright = pytest.importorskip('playwright.sync_api')
  with playwright.sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=['--no-sandbox'])
    page = browser.new_page(viewport={'width': 1200, 'height': 800})
    page.goto(app)
    page.locator('#image input[type=file]').set_input_files(photo)
    page.locator('#prompt textarea').fill('dog')
    page.get_by_text('Masker').locator('..').locator('input').first.click()
    page.get_by_role('option', name='SAM 2').click()
    page.locator('#run').click()
    page.locator('#status').get_by_text('Found: ').wait_for(timeout=120_000)
    assert page.locator('#result img').count() >= 1
    screenshot = os.environ.get('DEMO_SCREENSHOT', str(tmp_path / 'demo.png'))
    page.screenshot(path=screenshot, full_page=True)
    browser.close()
  assert os.path.getsize(screenshot) > 10_000


def test_a_calibration_serves_its_finder_in_place_of_the_slider(clipseg_dir, sam2_dir, photo):
  demo = Demo({'clipseg': clipseg_dir, 'sam2': sam2_dir}, device='cpu',
              settings=('clipseg', {'min_score': {'dog': 1.0, '*': 0.0}, 'threshold': {'dog': 0.0, '*': 0.0}}))
  image = np.asarray(Image.open(photo))
  assert 'dog' in demo.segment(image, 'dog, cap', 'clipseg', 'sam2', 0.0)[2]  # The slider: 0, everything.
  status = demo.segment(image, 'dog, cap', 'clipseg', 'sam2', 0.0, calibrated=True)[2]
  assert 'cap' in status and 'dog' not in status  # The calibration: 'dog' needs 1.0.
