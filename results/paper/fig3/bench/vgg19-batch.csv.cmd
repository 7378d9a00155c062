bench memory --model vgg19_bn --shape cifar --num-classes 100 --batch 32,128,256,512,1024 --optimizer sgd --steps 1 --threads 2 --csv results/paper/fig3/bench/vgg19-batch.csv
