bench memory --model resnet18 --shape cifar --num-classes 10 --batch 32,128,256,512,1024 --optimizer sgd --steps 1 --threads 2 --csv results/paper/fig3/bench/resnet152-batch.csv
