/** ImageFsInfo: bytes and inodes the image store uses. */
import type { ImageFsInfoRequest__Output } from '../../generated/runtime/v1/ImageFsInfoRequest.js';
import type { ImageFsInfoResponse } from '../../generated/runtime/v1/ImageFsInfoResponse.js';
import type { ImageService } from '../../image/service.js';
import type { UnaryImpl } from '../handler.js';

export function imageFsInfo(
  images: ImageService,
): UnaryImpl<ImageFsInfoRequest__Output, ImageFsInfoResponse> {
  return async () => {
    const usage = await images.fsInfo();
    return {
      image_filesystems: [
        {
          timestamp: usage.timestampNs,
          fs_id: { mountpoint: usage.mountpoint },
          used_bytes: { value: String(usage.usedBytes) },
          inodes_used: { value: String(usage.inodesUsed) },
        },
      ],
      container_filesystems: [],
    };
  };
}
